import Foundation
import Logging

/// Writes one line per event to standard error.
///
/// Under systemd (`JOURNAL_STREAM` set) each line starts with a `<N>` syslog
/// priority, which journald reads, and carries no timestamp of its own.
public struct FerryLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let underJournal: Bool

    public init(label: String, level: Logger.Level = .info) {
        self.logLevel = level
        self.underJournal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var line = underJournal ? "<\(Self.priority(event.level))>" : "ferry: "
        if !underJournal, event.level >= .warning {
            line += "\(event.level): "
        }
        line += "\(event.message)"
        for key in merged.keys.sorted() {
            line += " \(key)=\(merged[key]!)"
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
