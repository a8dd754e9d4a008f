internal import CSodium

/// BLAKE2b (RFC 7693), unkeyed, through libsodium's `crypto_generichash`.
///
/// NNCP names a node by the BLAKE2b-256 of its `signpub`; ferry checks that a
/// card's `id` is that hash. swift-crypto has no BLAKE2b, and libsodium is
/// the well-kept C library that has it.
public enum Blake2b {
    /// The 32-byte hash of `message` (`crypto_generichash` with no key).
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        // sodium_init picks the fastest implementation; it is idempotent and
        // thread-safe, and returns 1 once it has run before.
        _ = sodium_init()
        var digest = [UInt8](repeating: 0, count: 32)
        // crypto_generichash fails only for a digest or key length out of
        // its range; 32 bytes and no key are within it.
        let status = message.withUnsafeBufferPointer { input in
            crypto_generichash(&digest, digest.count, input.baseAddress, UInt64(input.count), nil, 0)
        }
        precondition(status == 0, "crypto_generichash refused a 32-byte unkeyed digest")
        return digest
    }
}
