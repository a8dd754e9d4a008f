import FerryCore

/// The ZFS pools the demo and the integration tests make on loop devices,
/// and their end.
public enum ScratchPools {
    /// Whether zfs answers at all: zfs-fuse is a daemon, which may not run.
    public static func zfsAnswers(runner: any CommandRunner) async -> Bool {
        (try? await runner.run(Zpool.probe(), input: nil))?.status.succeeded == true
    }

    /// Destroys `pool` if it is imported; nil once it is gone, else what
    /// went wrong. A pool can be busy for a moment after its last use (a
    /// clone just unmounted, a child of a killed ferry finishing).
    public static func destroy(_ pool: String, runner: any CommandRunner) async -> String? {
        for attempt in 1...5 {
            let result = try? await runner.run(Zpool.destroy(pool: pool), input: nil)
            if result?.status.succeeded == true { return nil }
            // A create that failed halfway, or an ejected drive, leaves no
            // pool to destroy.
            if (try? await runner.run(Zpool.guid(pool: pool), input: nil))?.status.succeeded == false { return nil }
            if attempt == 5 { return "could not destroy pool \(pool): \(result?.errorTail() ?? "zpool did not run")" }
            try? await Task.sleep(for: .seconds(1))
        }
        return nil
    }
}
