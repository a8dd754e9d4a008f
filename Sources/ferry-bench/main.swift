// ferry-bench: micro-benchmarks of ferry's core that no command line times
// alone. Run by bench/journal.sh; not a test.
import FerryCore
import Foundation

/// The journal: one append at growing sizes, and a verification at the limit.
func journalBenchmark(nncpConfig: String, directory: String) async throws {
    let nncp = try await NNCPConfigLoader(runner: SubprocessRunner()).load(path: nncpConfig, configKey: nil)
    let ferry = try SafeDirectory(path: directory)
    let record = ["note": String(repeating: "x", count: 900)]
    let writer = JournalWriter(directory: ferry, nncp: nncp, clock: SystemClock(), sizeLimit: Journal.sizeLimit)
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
    }
    let clock = ContinuousClock()
    var size = 0
    print("journal append, median of 25 appends at each size (1 KiB records, fsync of file and directory each):")
    for target in [0, 256 << 10, 512 << 10, 960 << 10] {
        while size < target {
            try writer.append(event: "fill", role: "bench", data: record)
            size = (try FileManager.default.attributesOfItem(atPath: directory + "/journal")[.size] as? Int) ?? 0
        }
        var times: [Double] = []
        for _ in 0..<25 {
            let start = clock.now
            try writer.append(event: "visit", role: "bench", data: record)
            times.append(milliseconds(clock.now - start))
        }
        size = (try FileManager.default.attributesOfItem(atPath: directory + "/journal")[.size] as? Int) ?? 0
        print(String(format: "  at %5d KiB: %.2f ms", target >> 10, median(times)))
    }
    var times: [Double] = []
    var records = 0
    for _ in 0..<11 {
        let start = clock.now
        let journal = try JournalReader.verify(directory: ferry, nncp: nncp)
        times.append(milliseconds(clock.now - start))
        records = journal.records.count
        guard journal.isClean else { throw BenchError(problem: "the benchmark journal does not verify: \(journal.problems[0])") }
    }
    print(String(format: "journal verify of %d KiB (%d records), median of 11: %.1f ms", size >> 10, records, median(times)))
}

struct BenchError: Error, CustomStringConvertible {
    var problem: String
    var description: String { problem }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, arguments[1] == "journal" else {
    FileHandle.standardError.write(Data("usage: ferry-bench journal NNCP-CONFIG EMPTY-DIRECTORY\n".utf8))
    exit(64)
}
try await journalBenchmark(nncpConfig: arguments[2], directory: arguments[3])
