import Foundation

/// A JSON value that carries its own ed25519 signature in `sig` (hex): the
/// signature covers `signingDomain`, then the value without `sig` as JSON
/// with sorted keys.
protocol SignedJSON: Encodable {
    /// Tells one kind of signed value from another; a node card has none,
    /// as DESIGN.md section 8 specifies.
    static var signingDomain: [UInt8] { get }
    var sig: String? { get set }
}

extension SignedJSON {
    func signedBytes() throws -> [UInt8] {
        var unsigned = self
        unsigned.sig = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Self.signingDomain + Array(try encoder.encode(unsigned))
    }
}
