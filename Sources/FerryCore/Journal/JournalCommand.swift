import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `ferry journal PATH|DEVNODE`: finds the journal, reads and verifies it.
public struct JournalCommand: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    /// `target` is a stick's device node (mounted read-only for the read), a
    /// mounted stick, its `.ferry` directory, or the journal file itself.
    public func read(_ target: String) async throws -> VerifiedJournal {
        let nncp = try await context.nncpConfig()
        var info = stat()
        guard lstat(target, &info) == 0 else {
            throw JournalError(path: target, problem: "does not exist")
        }
        switch FileType(mode: info.st_mode) {
        case .blockDevice:
            let device = try context.inspector.inspect(devnode: target)
            return try await withMountedMedium(device, readOnly: true, context: context, exclusive: false) { root in
                try JournalReader.verify(directory: try root.subdirectory(StickIdentity.directory), nncp: nncp)
            }
        case .directory:
            let directory = try SafeDirectory(path: target)
            let ferry =
                try directory.kind(of: StickIdentity.directory) == .directory
                ? try directory.subdirectory(StickIdentity.directory) : directory
            return try JournalReader.verify(directory: ferry, nncp: nncp)
        case .regular:
            let url = URL(fileURLWithPath: target)
            guard url.lastPathComponent == Journal.fileName else {
                throw JournalError(path: target, problem: "is not a journal (the file is called \(Journal.fileName))")
            }
            return try JournalReader.verify(directory: try SafeDirectory(path: url.deletingLastPathComponent().path), nncp: nncp)
        case .symlink:
            throw JournalError(path: target, problem: "is a symbolic link; ferry opens nothing through a link")
        default:
            throw JournalError(path: target, problem: "is neither a stick, a directory nor a journal")
        }
    }

    /// The human form: one line a record, problems last.
    public static func table(_ journal: VerifiedJournal) -> String {
        var lines = ["  seq  time                  node         event    status"]
        for record in journal.records {
            let status = record.trusted ? (record.fromSummary ? "ok (in summary)" : "ok") : "NOT TRUSTED"
            lines.append(
                "\(String(record.seq).leftPadded(5))  \(record.time.padding(toLength: 20, withPad: " ", startingAt: 0))  \(printable(record.node, limit: 12).padding(toLength: 12, withPad: " ", startingAt: 0)) \(printable(record.event, limit: 8).padding(toLength: 8, withPad: " ", startingAt: 0)) \(status)"
            )
        }
        if journal.records.isEmpty { lines.append("  (no records)") }
        lines.append(journal.problems.isEmpty ? "every record verifies" : "\(journal.problems.count) problem(s):")
        lines += journal.problems.map { "  \($0)" }
        if journal.problemsNotListed > 0 { lines.append("  and \(journal.problemsNotListed) more") }
        return terminalText(lines)
    }
}

extension VerifiedJournal {
    /// One JSON object a record: its fields, `trusted`, and its `data`.
    public func jsonLines() throws -> [String] {
        try records.map { record in
            var object =
                (try? JSONSerialization.jsonObject(with: Data(record.line)) as? [String: Any])
                ?? [
                    "seq": record.seq, "time": record.time, "node": record.node, "node-id": record.nodeID, "role": record.role,
                    "event": record.event, "data-omitted": true,
                ]
            object["sig"] = nil
            object["trusted"] = record.trusted
            object["from-summary"] = record.fromSummary
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
