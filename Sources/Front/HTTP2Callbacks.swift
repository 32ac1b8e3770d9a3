import CNGHTTP2

/// The nghttp2 session callbacks. Swift closures cannot be C function pointers, so these are
/// capture-free `@convention(c)` closures; each recovers its `HTTP2Connection` from the session's
/// `user_data` (an unretained pointer: the server's connection table owns the connection, and a
/// session never outlives its connection).
enum HTTP2Callbacks {
    /// A callbacks object for `nghttp2_session_server_new`, which copies it; the caller deletes it.
    static func make() -> OpaquePointer? {
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { return nil }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSent)
        return callbacks
    }

    static func connection(_ userData: UnsafeMutableRawPointer?) -> HTTP2Connection? {
        guard let userData else { return nil }
        return Unmanaged<HTTP2Connection>.fromOpaque(userData).takeUnretainedValue()
    }

    static let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
        guard let frame, let connection = connection(userData) else { return 0 }
        guard UInt32(frame.pointee.hd.type) == NGHTTP2_HEADERS.rawValue,
            frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
        else { return 0 }
        connection.beginRequest(streamID: frame.pointee.hd.stream_id)
        return 0
    }

    static let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
        guard let frame, let name, let value, let connection = connection(userData) else { return 0 }
        let accepted = connection.header(
            streamID: frame.pointee.hd.stream_id,
            name: UnsafeBufferPointer(start: name, count: nameLength),
            value: UnsafeBufferPointer(start: value, count: valueLength))
        // Refusing a header resets the stream (nghttp2 sends RST_STREAM INTERNAL_ERROR).
        return accepted ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
    }

    static let onDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
        guard let data, let connection = connection(userData) else { return 0 }
        connection.dataChunk(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
        return 0
    }

    static let onFrameReceived: nghttp2_on_frame_recv_callback = { _, frame, userData in
        guard let frame, let connection = connection(userData) else { return 0 }
        let header = frame.pointee.hd
        let isRequestHeaders =
            UInt32(header.type) == NGHTTP2_HEADERS.rawValue && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
        connection.frameReceived(
            type: header.type, flags: header.flags, streamID: header.stream_id, isRequestHeaders: isRequestHeaders)
        return 0
    }

    static let onFrameSent: nghttp2_on_frame_send_callback = { _, frame, userData in
        guard let frame, let connection = connection(userData) else { return 0 }
        connection.frameSent(
            type: frame.pointee.hd.type, flags: frame.pointee.hd.flags, streamID: frame.pointee.hd.stream_id)
        return 0
    }

    static let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, _, userData in
        connection(userData)?.streamClosed(streamID: streamID)
        return 0
    }

    /// Pulls the framed response message of a stream; at its end submits the trailers
    /// (`grpc-status: 0`) so the DATA frames carry no END_STREAM and the trailers do.
    static let readResponse: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
        guard let buffer, let flags, let connection = connection(userData) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        return connection.readResponse(
            streamID: streamID, into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags: flags)
    }
}

/// Header lists for nghttp2 submissions. nghttp2 copies names and values when a frame is
/// submitted, so the storage only has to live for the duration of the call.
enum HTTP2Headers {
    /// The HEADERS of every successful response and the trailers after its message, built once.
    /// Their bytes live as long as the process, so nghttp2 is told not to copy them
    /// (`NGHTTP2_NV_FLAG_NO_COPY_*`): answering a call builds no header list.
    nonisolated(unsafe) static let response = Fixed([(":status", "200"), ("content-type", "application/grpc")])
    nonisolated(unsafe) static let okTrailers = Fixed([("grpc-status", "0")])

    /// A header list that never changes; never deallocated (two exist, for the process's life).
    final class Fixed {
        let fields: UnsafeMutableBufferPointer<nghttp2_nv>

        init(_ headers: [(name: String, value: String)]) {
            fields = .allocate(capacity: headers.count)
            let noCopy = UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)
            for (index, header) in headers.enumerated() {
                let name = Self.permanent(header.name)
                let value = Self.permanent(header.value)
                fields[index] = nghttp2_nv(
                    name: name.baseAddress, value: value.baseAddress, namelen: name.count, valuelen: value.count,
                    flags: noCopy)
            }
        }

        private static func permanent(_ text: String) -> UnsafeMutableBufferPointer<UInt8> {
            let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: text.utf8.count)
            _ = bytes.initialize(from: text.utf8)
            return bytes
        }

        var pointer: UnsafePointer<nghttp2_nv>? { UnsafePointer(fields.baseAddress) }
        var count: Int { fields.count }
    }

    static func with<R>(
        _ headers: [(name: String, value: String)], _ body: (UnsafePointer<nghttp2_nv>?, Int) -> R
    ) -> R {
        let total = headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: max(total, 1))
        defer { storage.deallocate() }
        var fields: [nghttp2_nv] = []
        fields.reserveCapacity(headers.count)
        var offset = 0
        for header in headers {
            let name = storage + offset
            for byte in header.name.utf8 {
                storage[offset] = byte
                offset += 1
            }
            let value = storage + offset
            for byte in header.value.utf8 {
                storage[offset] = byte
                offset += 1
            }
            fields.append(
                nghttp2_nv(
                    name: name, value: value, namelen: header.name.utf8.count, valuelen: header.value.utf8.count,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
        }
        return fields.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
    }
}
