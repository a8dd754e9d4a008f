import Foundation

/// The cards of the neighbours this host paired with, in `state-dir/cards/`:
/// `ferry card --of NAME` prints them, and the spooler introduces its
/// laptops' cards across the gap with them.
public struct CardStore: Sendable {
    public var directory: String

    public init(stateDir: String) {
        directory = stateDir + "/cards"
    }

    /// The card kept under `name`, checked again as it is read.
    public func card(named name: String) throws -> NodeCard? {
        guard NodeName.isValid(name), let data = FileManager.default.contents(atPath: "\(directory)/\(name).card") else { return nil }
        return try NodeCard.read(Array(data), source: "\(directory)/\(name).card")
    }

    /// Every card kept, by name.
    public func all() -> [NodeCard] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".card") }.sorted()
        return names.compactMap { try? card(named: String($0.dropLast(".card".count))) }
    }

    public func save(_ card: NodeCard) throws {
        try LocalFiles.createDirectory(directory, mode: 0o755)
        try SafeDirectory(path: directory).writeFileAtomically(card.name + ".card", bytes: Array((try card.json() + "\n").utf8))
    }
}
