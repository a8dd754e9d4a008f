import Foundation
import Logging

/// Mounts a medium under `mount-root` for the length of `body`, with the safe
/// options, and unmounts it afterwards whatever `body` did.
///
/// With `exclusive` (the caller holds the spool lock) the mount point is
/// `mount-root/KERNELNAME`, and a mount left there by a crashed run is
/// detached lazily first: the next plug-in recovers. Without, a private mount
/// point is used that no other run touches.
public func withMountedMedium<T>(
    _ device: BlockDevice,
    readOnly: Bool,
    context: FerryContext,
    exclusive: Bool = true,
    _ body: (SafeDirectory) async throws -> T
) async throws -> T {
    guard let type = device.filesystem.type else {
        throw DeviceError(devnode: device.devnode, code: .probeFailed("no filesystem to mount"))
    }
    let mountRoot = context.config.mountRoot
    // 0711: nncp-user must pass through to the stick, but may not list it.
    try LocalFiles.createDirectory(mountRoot, mode: 0o711)
    let target = mountRoot + "/" + device.kernelName + (exclusive ? "" : ".look.\(getpid())")
    if exclusive, context.mounter.isMounted(target) {
        context.logger.warning("a stale mount from an earlier run is in the way; detaching it", metadata: ["mount": "\(target)"])
        try context.mounter.unmount(target, lazy: true)
    }
    try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
    let nncpUser = context.config.nncpUser
    let options = StickFilesystem(type: type).mountData(owner: nncpUser.isEmpty ? nil : Account(name: nncpUser))
    try context.mounter.mount(device: device.devnode, on: target, type: type, readOnly: readOnly, options: options)
    context.logger.debug(
        "mounted", metadata: ["device": "\(device.devnode)", "mount": "\(target)", "ro": "\(readOnly)", "options": "\(options)"])

    let outcome: Result<T, any Error>
    do {
        var root: SafeDirectory? = try SafeDirectory(path: target, shownAs: device.devnode + ":")
        let value = try await body(root!)
        root = nil
        outcome = .success(value)
    } catch {
        outcome = .failure(error)
    }
    do {
        try context.mounter.unmount(target, lazy: false)
    } catch {
        context.logger.warning("the medium is busy; detaching it lazily", metadata: ["mount": "\(target)", "error": "\(error.errno)"])
        try context.mounter.unmount(target, lazy: true)
    }
    rmdir(target)
    if readOnly {
        do {
            try context.mounter.allowWrites(device: device.devnode)
        } catch {
            context.logger.warning("the medium stays read-only until it is plugged in again", metadata: ["error": "\(error)"])
        }
    }
    return try outcome.get()
}
