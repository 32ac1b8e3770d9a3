import Logging
import Testing

@testable import KMSRuntime

struct JournaldLogHandlerTests {
    @Test func anEntryCarriesMessagePrioritySyslogIdentifierAndUpperCaseFields() {
        let fields = JournaldLogHandler.fields(
            level: .warning, identifier: "vault-kube-kms", process: "broker", event: "broker.peer_refused",
            metadata: ["peer_uid": "4242", "reason": "peer uid/gid not allowed"])
        #expect(
            fields == [
                "MESSAGE=broker.peer_refused peer_uid=4242 reason=peer uid/gid not allowed", "PRIORITY=4",
                "SYSLOG_IDENTIFIER=vault-kube-kms", "EVENT=broker.peer_refused", "PROCESS=broker", "PEER_UID=4242",
                "REASON=peer uid/gid not allowed",
            ])
    }

    @Test func metadataCannotOverrideTheFieldsTheHandlerSets() {
        let fields = JournaldLogHandler.fields(
            level: .info, identifier: "vault-kube-kms-front", process: "front", event: "e",
            metadata: ["priority": "0", "message": "spoofed", "syslog_identifier": "sshd"])
        #expect(fields.filter { $0.hasPrefix("PRIORITY=") } == ["PRIORITY=6"])
        #expect(fields.filter { $0.hasPrefix("SYSLOG_IDENTIFIER=") } == ["SYSLOG_IDENTIFIER=vault-kube-kms-front"])
        #expect(fields.filter { $0.hasPrefix("MESSAGE=") }.count == 1)
    }

    @Test func prioritiesFollowSyslogNumbering() {
        #expect(JournaldLogHandler.priority(.critical) == 2)
        #expect(JournaldLogHandler.priority(.error) == 3)
        #expect(JournaldLogHandler.priority(.warning) == 4)
        #expect(JournaldLogHandler.priority(.notice) == 5)
        #expect(JournaldLogHandler.priority(.info) == 6)
        #expect(JournaldLogHandler.priority(.debug) == 7)
        #expect(JournaldLogHandler.priority(.trace) == 7)
    }

    @Test func fieldNamesAreValidJournalNames() {
        #expect(JournaldLogHandler.fieldName("peer_uid") == "PEER_UID")
        #expect(JournaldLogHandler.fieldName("duration-ms") == "DURATION_MS")
        #expect(JournaldLogHandler.fieldName("_trusted") == "F__TRUSTED")
        #expect(JournaldLogHandler.fieldName("9lives") == "F_9LIVES")
        #expect(JournaldLogHandler.fieldName("ünïcode") == "F__N_CODE")
        #expect(JournaldLogHandler.fieldName(String(repeating: "a", count: 100)).utf8.count == 64)
    }

    @Test func journalStreamMatchesOnlyTheExactDeviceAndInode() {
        #expect(JournalStream.matches("8:1234", device: 8, inode: 1234))
        #expect(!JournalStream.matches("8:1234", device: 8, inode: 1235))
        #expect(!JournalStream.matches("9:1234", device: 8, inode: 1234))
        #expect(!JournalStream.matches("8:1234:5", device: 8, inode: 1234))
        #expect(!JournalStream.matches("", device: 0, inode: 0))
        #expect(!JournalStream.matches("x:y", device: 0, inode: 0))
    }
}
