import FerryCore
import FerryDemo
import Foundation
import Testing

/// The repository's top directory, for the udev rule, the unit and the Makefile.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .path

@Suite(
    "The udev rule under udevadm test", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot && Requirements.tool("/usr/bin/udevadm"), Requirements.rootOnly))
struct UdevRuleTests {
    static let usbLine = #"SUBSYSTEMS=="usb", GOTO="ferry_usb""#

    /// Installs `rules` in /run/udev/rules.d under a name of this test's own
    /// for `body`, and removes it and the udev database entries afterwards.
    func withRules(_ rules: String, devices: [LoopDevice], _ body: () async throws -> Void) async throws {
        let directory = "/run/udev/rules.d"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/90-ferry-test-\(getpid()).rules"
        try rules.write(toFile: path, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            try await body()
        } catch {
            await forget(devices)
            throw error
        }
        await forget(devices)
    }

    private func forget(_ devices: [LoopDevice]) async {
        for device in devices {
            _ = try? await SubprocessRunner().run(
                Command("/usr/bin/udevadm", ["test", "--action=remove", sysPath(device)], timeout: .seconds(60)), input: nil)
        }
    }

    func sysPath(_ device: LoopDevice) -> String { "/sys/class/block/" + URL(fileURLWithPath: device.devnode).lastPathComponent }

    /// The SYSTEMD_WANTS lines udev would set for `device` on `action`.
    func wants(_ device: LoopDevice, action: String) async throws -> [String] {
        let result = try await SubprocessRunner().check(
            Command("/usr/bin/udevadm", ["test", "--action=\(action)", sysPath(device)], timeout: .seconds(60)))
        let text = result.output + String(decoding: result.standardError, as: UTF8.self)
        return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("SYSTEMD_WANTS=") }
    }

    @Test("add of a filesystem or a zfs_member wants ferry@KERNEL.service; change, blank and non-USB devices do not")
    func rule() async throws {
        let rules = try String(contentsOfFile: repositoryRoot + "/udev/90-ferry.rules", encoding: .utf8)
        let lines = rules.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.filter { $0 == Self.usbLine }.count == 1, "the USB-parent test must be one line of its own")
        let variant = lines.map { $0 == Self.usbLine ? #"KERNEL=="loop*", GOTO="ferry_usb""# : $0 }.joined(separator: "\n")

        try await TestBed.with { bed in
            let stick = try await bed.stick("stick")
            let blank = try await bed.stick("blank", label: nil)
            let name = URL(fileURLWithPath: stick.devnode).lastPathComponent

            try await withRules(rules, devices: [stick]) {
                let wanted = try await wants(stick, action: "add")
                #expect(wanted.isEmpty, "a loop device has no USB parent")
            }
            try await withRules(variant, devices: [stick, blank]) {
                let added = try await wants(stick, action: "add")
                let changed = try await wants(stick, action: "change")
                let blankAdded = try await wants(blank, action: "add")
                #expect(added == ["SYSTEMD_WANTS=ferry@\(name).service"])
                #expect(changed.isEmpty)
                #expect(blankAdded.isEmpty)
            }
            if await Requirements.zfsAnswers {
                let drive = try await bed.pool("ferryudev\(getpid())")
                try await withRules(variant, devices: [drive]) {
                    let driveName = URL(fileURLWithPath: drive.devnode).lastPathComponent
                    let added = try await wants(drive, action: "add")
                    #expect(added == ["SYSTEMD_WANTS=ferry@\(driveName).service"])
                }
            }
        }
    }
}

@Suite("The systemd unit and make install", .tags(.integration))
struct UnitTests {
    /// systemd-analyze verify returns 0 on unknown keys, so any output is a failure.
    func verify(_ unit: String, name: String = "ferry@.service", instance: String = "ferry@sdz1.service") async throws -> String {
        var template = Array("/tmp/ferry-unit.XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // verify insists that ExecStart's binary exists; only that path changes.
        let copy = unit.replacingOccurrences(of: "ExecStart=/usr/bin/ferry ", with: "ExecStart=\(FerryBinary.path) ")
        try copy.write(toFile: directory + "/" + name, atomically: false, encoding: .utf8)
        let result = try await SubprocessRunner().run(
            Command("/usr/bin/systemd-analyze", ["verify", directory + "/" + instance], timeout: .seconds(60)), input: nil)
        return (result.output + String(decoding: result.standardError, as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(
        "systemd-analyze verify prints nothing for ferry@.service, and does complain about a bad key",
        .enabled(if: Requirements.tool("/usr/bin/systemd-analyze")))
    func unitVerifies() async throws {
        let unit = try String(contentsOfFile: repositoryRoot + "/systemd/ferry@.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/ferry handle /dev/%I\n"))
        #expect(unit.contains("BindsTo=dev-%i.device\n"))
        #expect(unit.contains("Type=oneshot\n"))
        #expect(try await verify(unit) == "")
        let broken = unit.replacingOccurrences(of: "[Service]\n", with: "[Service]\nNoSuchSetting=yes\n")
        #expect(try await verify(broken).contains("NoSuchSetting"))
        let toss = try String(contentsOfFile: repositoryRoot + "/systemd/ferry-toss.service", encoding: .utf8)
        #expect(toss.contains("ExecStart=/usr/bin/ferry toss\n"))
        #expect(try await verify(toss, name: "ferry-toss.service", instance: "ferry-toss.service") == "")
    }

    @Test("make install puts the binary, the rule, the unit and the config example in their Debian places")
    func makeInstall() async throws {
        var template = Array("/tmp/ferry-install.XXXXXX".utf8CString)
        let root = String(cString: mkdtemp(&template)!)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await SubprocessRunner().check(
            Command(
                "/usr/bin/make", ["-C", repositoryRoot, "-s", "install", "DESTDIR=\(root)", "FERRY_BIN=\(FerryBinary.path)"],
                timeout: .seconds(120)))
        let manager = FileManager.default
        #expect(manager.isExecutableFile(atPath: root + "/usr/bin/ferry"))
        #expect(manager.contents(atPath: root + "/usr/bin/ferry") == manager.contents(atPath: FerryBinary.path))
        #expect(
            manager.contents(atPath: root + "/etc/udev/rules.d/90-ferry.rules")
                == manager.contents(atPath: repositoryRoot + "/udev/90-ferry.rules"))
        let unit = try String(contentsOfFile: root + "/etc/systemd/system/ferry@.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/ferry handle /dev/%I\n"))
        let toss = try String(contentsOfFile: root + "/etc/systemd/system/ferry-toss.service", encoding: .utf8)
        #expect(toss.contains("ExecStart=/usr/bin/ferry toss\n"))
        #expect(manager.fileExists(atPath: root + "/etc/ferry/ferry.toml.example"))
        #expect(!manager.fileExists(atPath: root + "/etc/ferry/ferry.toml"), "install never writes the real config")
    }

    @Test("the shipped config example parses, and names the brief's defaults")
    func configExample() throws {
        let text = try String(contentsOfFile: repositoryRoot + "/config/ferry.toml.example", encoding: .utf8)
        let config = try FerryConfig.parse(text, path: "ferry.toml.example")
        #expect(config.nncpConfig == "/etc/nncp.hjson")
        #expect(config.stateDir == "/var/lib/ferry")
        #expect(config.mountRoot == "/run/ferry")
        #expect(config.retention.keep?.description == "10,1d1w,1w1m,1m1y")
        #expect(config.rotation.scrubAfter == .seconds(30 * 86400) && config.rotation.driveWarnPercent == 80)
    }
}
