import FerryCore
import Foundation

/// A disk image attached to a loop device: a real block device for the demo
/// and the integration tests. It is detached by its own name, never by a
/// pattern.
public struct LoopDevice: Sendable {
    public var image: String
    public var devnode: String

    /// Makes an image of `megabytes`, formats it as ext4 with `label` (or
    /// leaves it blank when `label` is nil), and attaches it.
    public static func create(image: String, megabytes: Int, ext4Label label: String?, runner: any CommandRunner) async throws -> LoopDevice
    {
        FileManager.default.createFile(atPath: image, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        try handle.truncate(atOffset: UInt64(megabytes) << 20)
        try handle.close()
        if let label {
            try await runner.check(LoopSetup.makeExt4(image: image, label: label))
        }
        return try await attach(image: image, runner: runner)
    }

    public static func attach(image: String, runner: any CommandRunner) async throws -> LoopDevice {
        let result = try await runner.check(LoopSetup.attach(image: image))
        return LoopDevice(image: image, devnode: result.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    public func detach(runner: any CommandRunner) async throws {
        try await runner.check(LoopSetup.detach(device: devnode))
    }
}
