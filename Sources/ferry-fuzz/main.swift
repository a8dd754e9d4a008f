import FerryCore
import Foundation

// The fuzz targets. scripts/fuzz builds this with libFuzzer's coverage
// flags, -D FERRY_LIBFUZZER and libFuzzer's library without its main, so
// that libFuzzer drives `fuzzOne`. A plain build (make test builds every
// target) replays files instead, and writes the signed seed journal:
//
//   FERRY_FUZZ_TARGET=journal ferry-fuzz FILE...   run each file once
//   ferry-fuzz --seed DIR                          write a signed journal into DIR
//
// FERRY_FUZZ_TARGET names the parser: journal, identity, stream-header, config.

let target = ProcessInfo.processInfo.environment["FERRY_FUZZ_TARGET"] ?? ""

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard FuzzTargets.run(target, bytes) else {
        FileHandle.standardError.write(Data("FERRY_FUZZ_TARGET must be one of \(FuzzTargets.names.joined(separator: ", "))\n".utf8))
        exit(64)
    }
    return 0
}

#if FERRY_LIBFUZZER
    @_silgen_name("LLVMFuzzerRunDriver")
    func runDriver(
        _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(runDriver(&argc, &argv) { fuzzOne($0, $1) })
#else
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.count == 2, arguments[0] == "--seed" {
        try FuzzTargets.seedJournal(in: arguments[1])
    } else {
        for path in arguments {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            _ = bytes.withUnsafeBufferPointer { fuzzOne($0.baseAddress, $0.count) }
        }
    }
#endif
