/// Every external program ferry runs is built here, with absolute paths:
/// under systemd and in NNCP exec handlers there is no PATH to rely on.
public enum Tool {
    public static let nncpCfgdir = "/usr/bin/nncp-cfgdir"
    public static let nncpCfgnew = "/usr/bin/nncp-cfgnew"
    public static let nncpXfer = "/usr/bin/nncp-xfer"
    public static let nncpToss = "/usr/bin/nncp-toss"
    public static let nncpAck = "/usr/bin/nncp-ack"
    public static let nncpRm = "/usr/bin/nncp-rm"
    public static let nncpExec = "/usr/bin/nncp-exec"
    public static let shell = "/bin/sh"
    public static let systemctl = "/usr/bin/systemctl"
    public static let zpool = "/usr/sbin/zpool"
    public static let zfs = "/usr/sbin/zfs"
    public static let runuser = "/usr/sbin/runuser"
    public static let mount = "/usr/bin/mount"
}

/// NNCP's own tools.
public enum NNCP {
    /// Dumps the NNCP config at `config` into the directory tree `directory`,
    /// which must not exist yet: NNCP reads its HJSON so that ferry does not.
    public static func cfgdirDump(config: String, into directory: String) -> Command {
        Command(Tool.nncpCfgdir, ["-cfg", config, "-dump", directory], timeout: .seconds(30))
    }

    /// Makes a new node (`ferry init`): a config with fresh keys, on
    /// standard output.
    public static func cfgnew() -> Command {
        Command(Tool.nncpCfgnew, ["-nocomments"], timeout: .seconds(30))
    }

    /// Reads the configuration directory `directory` with NNCP's own parser
    /// and prints it as HJSON: ferry discards the text, and keeps only
    /// NNCP's verdict on the directory.
    public static func cfgdirLoad(directory: String) -> Command {
        Command(Tool.nncpCfgdir, ["-load", directory], timeout: .seconds(30))
    }

    // No -quiet: with it nncp-xfer prints not even its errors, which ferry
    // reads to tell a damaged packet from a failed run. Of the NNCP log, a
    // line a packet, ferry keeps the lines it reads and the last few.
    static let errorLines = ErrorLines.matching(["ERROR"])
    /// nncp-ack's log says, for each packet, "ACK to NODE of HASH is sent".
    static let ackLines = ErrorLines.matching(["ERROR", " is sent"])

    /// Moves the packets for this node from the stick into the spool, checking
    /// each one's hash; what is taken is removed from the stick.
    public static func xferReceive(config: String, directory: String, timeout: Duration) -> Command {
        Command(Tool.nncpXfer, ["-cfg", config, "-noprogress", "-rx", "-mkdir", directory], timeout: timeout).keeping(errorLines)
    }

    /// Copies the packets queued for `node` onto the stick. With `keep` the
    /// spool keeps its copies until an ACK comes back; without, they move.
    public static func xferSend(config: String, directory: String, node: String, keep: Bool, timeout: Duration) -> Command {
        Command(
            Tool.nncpXfer, ["-cfg", config, "-noprogress", "-tx", "-mkdir"] + (keep ? ["-keep"] : []) + ["-node", node, directory],
            timeout: timeout)
    }

    /// Processes the received packets, remembering them so that none is
    /// processed twice.
    public static func toss(config: String, timeout: Duration?) -> Command {
        Command(Tool.nncpToss, ["-cfg", config, "-noprogress", "-seen"], timeout: timeout).keeping(errorLines)
    }

    /// Queues ACKs for the packets received from `node`. nncp-ack writes the
    /// list of ACK packets it made to descriptor 4; the shell points that at
    /// standard output, and nncp-ack's own output at standard error.
    public static func ack(config: String, node: String, timeout: Duration) -> Command {
        Command(
            Tool.shell, ["-c", "exec \"$@\" 4>&1 1>&2", "nncp-ack", Tool.nncpAck, "-cfg", config, "-noprogress", "-node", node],
            timeout: timeout
        ).keeping(ackLines)
    }

    /// Queues an ACK for the one packet `packet` from `node`, without looking
    /// in rx: NNCP 8.8.2 makes it for any hash, so that a packet whose first
    /// ACK was lost (and which xfer -rx now drops as seen) is confirmed
    /// again. It does not check whether that packet was itself an ACK: the
    /// caller must. The ACK's name goes to descriptor 4, as with `ack`.
    public static func ackPacket(config: String, node: String, packet: String, timeout: Duration) -> Command {
        Command(
            Tool.shell,
            ["-c", "exec \"$@\" 4>&1 1>&2", "nncp-ack", Tool.nncpAck, "-cfg", config, "-noprogress", "-node", node, "-pkt", packet],
            timeout: timeout
        ).keeping(ackLines)
    }

    /// Removes the packets listed on standard input (`NODEID/PACKET` lines)
    /// from the spool.
    public static func removePackets(config: String, node: String, timeout: Duration) -> Command {
        Command(Tool.nncpRm, ["-cfg", config, "-node", node, "-pkt"], timeout: timeout).keeping(errorLines)
    }

    /// Queues standard input for `handle` on `node` (the laptop side).
    public static func exec(config: String, nice: String, node: String, handle: String, arguments: [String]) -> Command {
        Command(Tool.nncpExec, ["-cfg", config, "-noprogress", "-nice", nice, node, handle] + arguments)
    }

    /// The exec handle of backupsvr's state for a laptop, of verify
    /// requests (to a laptop) and of verify results (to backupsvr).
    public static let stateHandle = "ferrystate"

    /// Queues the state message on standard input for `node`'s `ferrystate`
    /// handle. Priority niceness: it is small, and should not wait behind
    /// bulk streams on a stick with little room.
    public static func execState(config: String, node: String) -> Command {
        exec(config: config, nice: "P", node: node, handle: stateHandle, arguments: [])
    }

    /// Queues one part of a split stream (DESIGN.md section 9): the same
    /// handle, with the stream and the part named after the destination.
    public static func execPart(
        config: String, nice: String, node: String, handle: String, destination: String, stream: String, part: Int
    ) -> Command {
        exec(config: config, nice: nice, node: node, handle: handle, arguments: [destination, "--stream", stream, "--part", "\(part)"])
    }
}

/// ZFS dataset commands. Metadata commands have a timeout; streams take
/// as long as they take.
public enum Zfs {
    static let metadataTimeout: Duration = .seconds(300)

    /// `zfs get` in script form, exact numbers: one "name property value
    /// source" line per dataset and property. `depth` 1 lists a dataset and
    /// its snapshots (and its direct children); nil lists the dataset alone.
    public static func get(_ properties: [String], of datasets: [String], depth: Int? = nil, recursive: Bool = false) -> Command {
        var arguments = ["get", "-H", "-p", "-o", "name,property,value,source"]
        if recursive { arguments.append("-r") } else if let depth { arguments += ["-d", "\(depth)"] }
        return Command(Tool.zfs, arguments + [properties.joined(separator: ",")] + datasets, timeout: metadataTimeout)
    }

    /// The filesystems and volumes at and under `root`.
    public static func listDatasets(under root: String) -> Command {
        Command(Tool.zfs, ["list", "-H", "-o", "name", "-t", "filesystem,volume", "-r", root], timeout: metadataTimeout)
    }

    public static func snapshot(_ dataset: String, named name: String) -> Command {
        Command(Tool.zfs, ["snapshot", dataset + "@" + name], timeout: metadataTimeout)
    }

    /// The stream of `dataset@snapshot`: the increment from `dataset@base`,
    /// or the whole snapshot when `base` is nil.
    public static func send(_ dataset: String, snapshot: String, from base: String?) -> Command {
        Command(Tool.zfs, ["send"] + (base.map { ["-i", dataset + "@" + $0] } ?? []) + [dataset + "@" + snapshot])
    }

    /// One stream of every snapshot of `dataset` after `base` up to
    /// `snapshot` (`-I`): how a drive that is behind catches up from another.
    public static func sendRange(_ dataset: String, from base: String, to snapshot: String) -> Command {
        Command(Tool.zfs, ["send", "-I", dataset + "@" + base, dataset + "@" + snapshot])
    }

    /// Receives a stream on standard input into `target`.
    public static func receive(into target: String, options: [String]) -> Command {
        Command(Tool.zfs, ["receive"] + options + [target])
    }

    /// A receive that reads nothing (`-n` and an empty stream): it shows
    /// whether this zfs knows every option in `options`.
    public static func probeReceive(options: [String], target: String) -> Command {
        Command(Tool.zfs, ["receive"] + options + ["-n", target], timeout: .seconds(60))
    }

    public static func set(_ property: String, _ value: String, on dataset: String) -> Command {
        Command(Tool.zfs, ["set", property + "=" + value, dataset], timeout: metadataTimeout)
    }

    /// An empty dataset that holds received ones: never mounted, read-only,
    /// and marked as ferry's own.
    public static func createContainer(_ dataset: String) -> Command {
        Command(
            Tool.zfs, ["create", "-o", "canmount=off", "-o", "readonly=on", "-o", "ferry:container=on", dataset],
            timeout: metadataTimeout)
    }

    public static func rename(_ dataset: String, to newName: String) -> Command {
        Command(Tool.zfs, ["rename", dataset, newName], timeout: metadataTimeout)
    }

    /// Destroys one snapshot. Never recursive: ferry destroys only what it
    /// named itself.
    public static func destroySnapshot(_ dataset: String, named name: String) -> Command {
        Command(Tool.zfs, ["destroy", dataset + "@" + name], timeout: metadataTimeout)
    }

    /// Destroys one dataset that has no children and no snapshots: what a
    /// receive cut short left behind.
    public static func destroyEmpty(_ dataset: String) -> Command {
        Command(Tool.zfs, ["destroy", dataset], timeout: metadataTimeout)
    }

    /// A read-only clone of `snapshot` named `clone`, to mount at
    /// `mountpoint`, marked with `marker` as ferry's own. `canmount=noauto`:
    /// a clone left behind by a crash is not mounted again when its pool is
    /// next imported.
    public static func cloneReadOnly(_ snapshot: String, to clone: String, mountpoint: String, marker: (String, String)) -> Command {
        Command(
            Tool.zfs,
            [
                "clone", "-o", "canmount=noauto", "-o", "readonly=on", "-o", "mountpoint=" + mountpoint, "-o",
                marker.0 + "=" + marker.1, snapshot, clone,
            ],
            timeout: metadataTimeout)
    }

    public static func mount(_ dataset: String) -> Command {
        Command(Tool.zfs, ["mount", dataset], timeout: metadataTimeout)
    }

    public static func unmount(_ dataset: String) -> Command {
        Command(Tool.zfs, ["unmount", dataset], timeout: metadataTimeout)
    }

    /// Abandons an interrupted resumable receive (OpenZFS).
    public static func abortResumableReceive(_ dataset: String) -> Command {
        Command(Tool.zfs, ["receive", "-A", dataset], timeout: metadataTimeout)
    }
}

/// ZFS pool commands.
public enum Zpool {
    /// Every imported pool: "name guid health" lines.
    public static func listImported() -> Command {
        Command(Tool.zpool, ["list", "-H", "-o", "name,guid,health"], timeout: .seconds(60))
    }

    /// The pools that are not healthy, in zpool status's own words ("all
    /// pools are healthy" otherwise). Read-only: it answers even while a
    /// pool's I/O is suspended.
    public static func unhealthy() -> Command {
        Command(Tool.zpool, ["status", "-x"], timeout: .seconds(60))
    }

    /// Prints the pool's GUID, in decimal.
    public static func guid(pool: String) -> Command {
        Command(Tool.zpool, ["list", "-H", "-o", "guid", pool], timeout: .seconds(60))
    }

    /// Starts a scrub of `pool`, or with `stop` stops the running one.
    public static func scrub(pool: String, stop: Bool = false) -> Command {
        Command(Tool.zpool, ["scrub"] + (stop ? ["-s"] : []) + [pool], timeout: .seconds(60))
    }

    /// The pool's status with the files that have errors: where a scrub's
    /// progress and result are read.
    public static func status(pool: String) -> Command {
        Command(Tool.zpool, ["status", "-v", pool], timeout: .seconds(60))
    }

    /// Exports `pool`; `force` for a pool whose device is gone.
    public static func export(pool: String, force: Bool = false) -> Command {
        Command(Tool.zpool, ["export"] + (force ? ["-f"] : []) + [pool], timeout: .seconds(300))
    }

    /// Clears a pool's errors; a pool suspended when its device went away
    /// resumes once the device is back.
    public static func clear(pool: String) -> Command {
        Command(Tool.zpool, ["clear", pool], timeout: .seconds(60))
    }

    /// Imports the pool with `guid`, looking for its device in
    /// `searchDirectory` only. Without `altroot` nothing is mounted (`-N`),
    /// and the pool stays out of the boot-time cache file (which is also
    /// read-only under ferry@.service's ProtectSystem=strict): a drive is
    /// imported when it is plugged in, never at boot from a stale list.
    /// zfs-fuse has no `-N`, so there its file systems that can mount do so
    /// under `altroot` (which implies no cache file).
    public static func importByGUID(_ guid: String, searchDirectory: String, altroot: String? = nil) -> Command {
        let mounting = altroot.map { ["-R", $0] } ?? ["-N", "-o", "cachefile=none"]
        return Command(Tool.zpool, ["import"] + mounting + ["-d", searchDirectory, guid], timeout: .seconds(300))
    }
}

/// mount(8), for what mount(2) through `Mounter` does not cover.
public enum Mount {
    /// Shows the directory `source` again at `target`, read-only, with
    /// nothing on it run, nothing a device and no set-uid honoured.
    /// util-linux makes the bind and its read-only remount in one go.
    public static func bindReadOnly(_ source: String, on target: String) -> Command {
        Command(Tool.mount, ["-o", "bind,ro,nosuid,nodev,noexec", source, target], timeout: .seconds(60))
    }
}

/// systemd, where it runs.
public enum Systemctl {
    /// Starts `unit` and returns at once: the late toss outlives the visit.
    public static func startNoBlock(_ unit: String) -> Command {
        Command(Tool.systemctl, ["start", "--no-block", unit], timeout: .seconds(30))
    }
}

/// The admin's own `notify-command` (a beep, an LED).
public enum Notify {
    /// `notify-command`, told that the stick on `device` may go; nil when
    /// none is configured.
    public static func safeToRemove(_ notifyCommand: [String], device: String) -> Command? {
        guard let executable = notifyCommand.first else { return nil }
        return Command(
            executable, Array(notifyCommand.dropFirst()), environment: ["FERRY_EVENT": "safe-to-remove", "FERRY_DEVICE": device],
            timeout: .seconds(30))
    }
}

extension Command {
    /// The same command run as `user` through runuser(1); unchanged when
    /// `user` is empty, which means "as ferry's own user".
    public func asUser(_ user: String) -> Command {
        guard !user.isEmpty else { return self }
        return Command(Tool.runuser, ["-u", user, "--", executable] + arguments, environment: environment, timeout: timeout)
            .keeping(errorLines)
    }
}
