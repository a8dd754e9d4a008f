import FerryCore
import FerryDemo
import Foundation
import Testing

@Suite(
    "Sticks on real loop devices", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct StickTests {
    @Test("a blank ext4 stick is identified, enrolled at the spooler, and accepted at backupsvr")
    func enrolAndAccept() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.stick("stick")

            let before = try await bed.ferry("spooler", "identify", "--json", stick.devnode)
            #expect(before.status == 0)
            let recognition = try JSONDecoder().decode(Recognition.self, from: Data(before.output.utf8))
            #expect(recognition.verdict == .unknown)
            #expect(recognition.device.filesystem.type == "ext4")
            #expect(recognition.device.filesystem.label == "FERRY-1")
            #expect(recognition.device.size == 64 << 20)

            let enrol = try await bed.ferry("spooler", "enroll", stick.devnode)
            #expect(enrol.status == 0, "\(enrol.error)")
            #expect(enrol.output.contains("enrolled \(stick.devnode): filesystem \(recognition.device.filesystem.uuid!)"))

            let again = try await bed.ferry("spooler", "enroll", stick.devnode)
            #expect(again.status == 0)
            #expect(again.output.contains("is already enrolled"))

            let identify = try await bed.ferry("backupsvr", "identify", stick.devnode)
            #expect(identify.status == 0)
            #expect(identify.output.contains("verdict     stick: enrolled by spooler at "))
            #expect(identify.output.contains("label FERRY-1"))

            let handle = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(handle.status == 0, "\(handle.error)")
            #expect(handle.error.contains("known stick"))
            #expect(handle.error.contains("safe to remove"))
            #expect(!LinuxMounter().isMounted("\(bed.directory)/backupsvr/mnt/\(URL(fileURLWithPath: stick.devnode).lastPathComponent)"))
        }
    }

    /// Enrolls a stick at the spooler, lets `forge` change it, and checks that
    /// backupsvr refuses it with `message`, exit 2, and leaves every byte as it was.
    func expectRefused(message: String, forge: (TestBed, LoopDevice) async throws -> Void) async throws {
        try await TestBed.with { bed in
            let stick = try await bed.stick("stick")
            #expect(try await bed.ferry("spooler", "enroll", stick.devnode).status == 0)
            try await forge(bed, stick)
            let before = try bed.contents(stick)
            let handle = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(handle.status == 2)
            #expect(handle.error.contains("is not ours and was left alone"))
            #expect(handle.error.contains(message), "\(handle.error)")
            #expect(!handle.error.contains("Fatal error"))
            #expect(try bed.contents(stick) == before, "handle changed the medium")
        }
    }

    func editIdentity(_ bed: TestBed, _ stick: LoopDevice, _ edit: @escaping (inout [String: Any]) -> Void) throws {
        try bed.tamper(stick) { root in
            let path = root + "/.ferry/identity"
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
            edit(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        }
    }

    @Test("a stick whose filesystem UUID changed is refused")
    func changedUUID() async throws {
        try await expectRefused(message: "was it copied from another stick") { bed, stick in
            // tune2fs changes the UUID of a metadata_csum filesystem only when
            // it was checked after its last mount: enrolment mounted it, and
            // when that fell in a later second than mkfs, tune2fs refused.
            try await bed.sh("/usr/sbin/e2fsck", "-f", "-p", stick.devnode)
            try await bed.sh("/usr/sbin/tune2fs", "-U", "random", stick.devnode)
        }
    }

    @Test("an identity whose enroller was changed is refused")
    func changedEnroller() async throws {
        try await expectRefused(message: "does not verify against") { bed, stick in
            let backupsvrID = try String(contentsOfFile: bed.network.config("backupsvr"), encoding: .utf8)
            let json = try JSONSerialization.jsonObject(with: Data(backupsvrID.utf8)) as! [String: Any]
            let id = (json["self"] as! [String: Any])["id"] as! String
            try editIdentity(bed, stick) { $0["enroller"] = id }
        }
    }

    @Test("an identity with a bad signature is refused")
    func badSignature() async throws {
        try await expectRefused(message: "does not verify against spooler's signpub") { bed, stick in
            try editIdentity(bed, stick) { object in
                var sig = Array(object["sig"] as! String)
                sig[10] = sig[10] == "0" ? "1" : "0"
                object["sig"] = String(sig)
            }
        }
    }

    @Test("an identity that is not JSON is refused")
    func notJSON() async throws {
        try await expectRefused(message: "is not a ferry identity") { bed, stick in
            try bed.tamper(stick) { root in try "hello".write(toFile: root + "/.ferry/identity", atomically: false, encoding: .utf8) }
        }
    }

    @Test("a 100 KiB identity file is refused unread")
    func hugeIdentity() async throws {
        try await expectRefused(message: "is larger than 4096 bytes") { bed, stick in
            try bed.tamper(stick) { root in
                try Data(repeating: UInt8(ascii: "{"), count: 100 * 1024).write(to: URL(fileURLWithPath: root + "/.ferry/identity"))
            }
        }
    }

    @Test("a stick whose .ferry is a symlink is refused, and the link is not followed")
    func symlinkedFerry() async throws {
        try await expectRefused(message: ".ferry is a symbolic link") { bed, stick in
            try bed.tamper(stick) { root in
                try FileManager.default.moveItem(atPath: root + "/.ferry", toPath: root + "/real")
                try FileManager.default.createSymbolicLink(atPath: root + "/.ferry", withDestinationPath: "real")
            }
        }
    }

    @Test("an unlabelled, unenrolled ext4 stick is refused")
    func unlabelled() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.stick("plain", label: "")
            let before = try bed.contents(stick)
            let handle = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(handle.status == 2)
            #expect(handle.error.contains(".ferry does not exist: the stick is not enrolled"))
            #expect(try bed.contents(stick) == before)
        }
    }

    @Test("a foreign filesystem and a blank device are refused without a mount")
    func foreign() async throws {
        try await TestBed.with { bed in
            let swap = try await bed.stick("swap", label: nil)
            try await bed.sh("/usr/sbin/mkswap", swap.devnode)
            let blank = try await bed.stick("blank", label: nil)
            for (device, reason) in [
                (swap, "it carries a swap filesystem, which ferry does not use"), (blank, "it carries no filesystem that libblkid knows"),
            ] {
                let before = try bed.contents(device)
                let handle = try await bed.ferry("spooler", "handle", device.devnode)
                #expect(handle.status == 2)
                #expect(handle.error.contains(reason), "\(handle.error)")
                let identify = try await bed.ferry("spooler", "identify", device.devnode)
                #expect(identify.status == 0)
                #expect(identify.output.contains("verdict     unknown"))
                #expect(try bed.contents(device) == before)
            }
        }
    }

    @Test("an unknown ext4 stick whose journal needs recovery is refused, and not one byte of its image changes")
    func needsRecoveryLeftAlone() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.stick("dirty")
            // One committed journal transaction and the needs_recovery flag:
            // what a stick pulled while mounted carries. Any mount that
            // replays the journal writes the medium.
            let script = "\(bed.directory)/journal-transaction"
            try "jo\njw -b 100 /dev/zero\njc\n".write(toFile: script, atomically: true, encoding: .utf8)
            try await bed.sh("/usr/sbin/debugfs", "-w", "-f", script, stick.devnode)
            let header = try await bed.sh("/usr/sbin/dumpe2fs", "-h", stick.devnode)
            #expect(header.output.contains("needs_recovery"), "\(header.output)")
            let before = try await bed.sh("/usr/bin/sha256sum", stick.image).output
            let handle = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(handle.status == 2, "\(handle.error)")
            #expect(handle.error.contains("is not ours and was left alone"), "\(handle.error)")
            let identify = try await bed.ferry("spooler", "identify", stick.devnode)
            #expect(identify.output.contains("verdict     unknown"), "\(identify.output) \(identify.error)")
            #expect(try await bed.sh("/usr/bin/sha256sum", stick.image).output == before, "the look at the stick wrote it")
        }
    }

    @Test("a device node that does not exist, or a directory, is a clear failure with exit 1")
    func badDevnode() async throws {
        try await TestBed.with { bed in
            let missing = try await bed.ferry("spooler", "handle", "/dev/ferry-no-such-device")
            #expect(missing.status == 1)
            #expect(missing.error == "ferry: /dev/ferry-no-such-device does not exist; was the medium pulled out?\n")
            let directory = try await bed.ferry("spooler", "identify", bed.directory)
            #expect(directory.status == 1)
            #expect(directory.error == "ferry: \(bed.directory) is a directory, not a block device\n")
        }
    }
}

@Suite("Config errors from the command line", .tags(.integration))
struct ConfigCommandLineTests {
    func run(config text: String?, _ arguments: String...) async throws -> Run {
        var template = Array("/tmp/ferry-cfg.XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ferry.toml"
        if let text { try text.write(toFile: path, atomically: false, encoding: .utf8) }
        return try await FerryBinary.run(Array(arguments) + ["--config", path], environment: ["FERRY_CONFIG": ""])
    }

    @Test(
        "each bad config gives exactly one line naming the file and the key, and exit 1",
        arguments: [
            (nil, "does not exist; write one from /etc/ferry/ferry.toml.example"),
            ("role = \"spooler\"\npeer = \"backupsvr\"\ncolour = \"blue\"\n", "key \"colour\" is not a known setting"),
            ("role = \"courier\"\n", "key \"role\" is \"courier\""),
            ("role = [\n", "is not valid TOML at line"),
            (
                "role = \"spooler\"\npeer = \"backupsvr\"\nnncp-config = \"/nonexistent/nncp.hjson\"\n",
                "ferry.toml: key \"nncp-config\" names /nonexistent/nncp.hjson, which does not exist"
            ),
            (
                "role = \"laptop\"\nnncp-config = \"/etc/hostname\"\n",
                "key \"role\" is laptop, but `ferry handle` runs only on spooler or backupsvr"
            ),
        ] as [(String?, String)])
    func badConfig(text: String?, message: String) async throws {
        let run = try await run(config: text, "handle", "/dev/null")
        #expect(run.status == 1)
        #expect(run.error.hasPrefix("ferry: "))
        #expect(run.error.contains(message), "\(run.error)")
        #expect(run.error.split(separator: "\n").count == 1, "\(run.error)")
        #expect(run.output.isEmpty)
    }
}
