/// Every size limit shared by the front and the broker, with where the number comes from.
public enum Limits {
    /// KMS v2 encrypts 32-byte DEK seeds (k8s.io/apiserver kmsv2, KMSv2KDF). 512 leaves headroom for
    /// any future seed size while keeping the Vault ciphertext far below `maxCiphertextBytes`.
    public static let maxPlaintextBytes = 512
    /// kube-apiserver rejects an Encrypt response whose ciphertext is longer than 1024 bytes
    /// (envelope/kmsv2 validateEncryptedObject), so nothing longer can be valid input to Decrypt.
    public static let maxCiphertextBytes = 1024
    /// kube-apiserver rejects a key_id longer than 1024 bytes (kmsv2 validateKeyID).
    public static let maxKeyIDBytes = 1024
    /// kube-apiserver sends a UUID (36 bytes); 128 bytes bounds what we log and forward to Vault
    /// as `X-Correlation-Id`.
    public static let maxUIDBytes = 128
    /// kube-apiserver limits annotation keys plus values to 32 KiB (kmsv2 validateAnnotations).
    public static let maxAnnotationsBytes = 32 * 1024
    /// A healthz reason is shown in apiserver health output; a short sentence at most.
    public static let maxHealthzBytes = 256
    /// Software version strings exchanged in HELLO.
    public static let maxVersionStringBytes = 64
    /// The broker protocol's packet cap. The largest legal packet is a DECRYPT request:
    /// header 16 + deadline 4 + (2 + uid 128) + (2 + key_id 1024) + (2 + ciphertext 1024) = 2202.
    public static let maxBrokerPacketBytes = 4096
    /// Requests one front connection may have in flight at the broker. grpc-go's default
    /// MaxConcurrentStreams is 100 per connection and the apiserver uses one connection.
    public static let maxInFlightPerFront = 256
    /// A deadline longer than a minute is treated as a minute: the apiserver's default is 3 s.
    public static let maxDeadlineMillis: UInt32 = 60_000
    /// Largest gRPC message the front accepts: a Decrypt request with the maximum annotations
    /// (32 KiB) and ciphertext (1 KiB) fits; grpc-go's default client limit is 4 MiB.
    public static let maxGRPCMessageBytes = 64 * 1024
    /// Entries in one METRICS answer. 64 until issue 14 (49 ids before it); the HashiCorp-compatible Vault
    /// histograms (44 ids) and the key_id hashes kube-apiserver's labels can be joined with (20
    /// ids) need more. 256 keeps the largest answer (1 + 2 + 64 + 2 + 256 * 10 = 2629 bytes, plus
    /// the 16-byte header) under the 4096-byte packet cap; docs/PROTOCOL.md has the measured cost.
    public static let maxMetricsEntries = 256
}
