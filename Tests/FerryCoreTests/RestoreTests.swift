import Testing

@testable import FerryCore

@Suite("[restore] in the config")
struct RestoreConfigTests {
    let path = "/etc/ferry/ferry.toml"

    @Test("[restore] into names where restores land; without it, each dataset's pool's ferry-restore")
    func into() throws {
        let configured = try FerryConfig.parse("role = \"laptop\"\n[restore]\ninto = \"tank/restores\"\n", path: path)
        let dataset = try DatasetName("rpool/home")
        #expect("\(configured.restore.root(for: dataset))" == "tank/restores")
        let plain = try FerryConfig.parse("role = \"laptop\"\n", path: path)
        #expect(plain.restore.into == nil)
        #expect("\(plain.restore.root(for: dataset))" == "rpool/ferry-restore")
    }

    @Test(
        "a bad [restore] value is one error line naming the file and the key",
        arguments: [
            (
                "[restore]\ninto = \"/tank/x\"\n",
                "/etc/ferry/ferry.toml: key \"restore.into\" is not a dataset name: dataset name \"/tank/x\" is an absolute path"
            ),
            ("[restore]\ninto = \"tank//x\"\n", "key \"restore.into\" is not a dataset name"),
            ("[restore]\ninto = \"tank/x@s\"\n", "key \"restore.into\" is not a dataset name: dataset name \"tank/x@s\" names a snapshot"),
            ("[restore]\ninto = 3\n", "key \"restore.into\" must be a string"),
            ("[restore]\nonto = \"tank/x\"\n", "key \"restore.onto\" is not a known setting; known here: into"),
        ])
    func badRestore(text: String, message: String) {
        #expect {
            _ = try FerryConfig.parse("role = \"laptop\"\n" + text, path: path)
        } throws: { error in
            "\(error)".contains(message) && !"\(error)".contains("\n")
        }
    }

    @Test("a restore goes to the laptop's zfsrestore handle, and in parts with the part's stream and number")
    func restoreExecArgv() {
        let whole = NNCP.exec(config: "/etc/nncp.hjson", nice: "B", node: "laptop", handle: "zfsrestore", arguments: ["laptop/tank/root"])
        #expect(whole.description == "/usr/bin/nncp-exec -cfg /etc/nncp.hjson -noprogress -nice B laptop zfsrestore laptop/tank/root")
        let part = NNCP.execPart(
            config: "/etc/nncp.hjson", nice: "B", node: "laptop", handle: RestoreSender.handle, destination: "laptop/tank/root",
            stream: "00112233445566778899aabbccddeeff", part: 2)
        #expect(
            part.arguments == [
                "-cfg", "/etc/nncp.hjson", "-noprogress", "-nice", "B", "laptop", "zfsrestore", "laptop/tank/root", "--stream",
                "00112233445566778899aabbccddeeff", "--part", "2",
            ])
    }
}

@Suite("Restores at the laptop: who may send one, and what ferry send leaves out")
struct RestoreAuthorizationTests {
    let world = FakeWorld()

    func receiver() -> RestoreReceiver {
        var context = world.context(role: .laptop, as: "laptop", peer: "spooler")
        context.config.send.host = "laptop"
        return RestoreReceiver(context: context, nncp: world.nodes.config(of: "laptop"))
    }

    @Test("a restore from backupsvr for laptop/DATASET is taken as DATASET")
    func fromBackupsvr() throws {
        let accepted = try receiver().authorize(destination: "laptop/tank/root", senderID: world.nodes.id("backupsvr"))
        #expect("\(accepted.dataset)" == "tank/root")
        #expect(accepted.sender == "backupsvr")
        #expect(receiver().target(for: accepted.dataset) == "tank/ferry-restore/tank/root")
    }

    @Test(
        "a restore from any other node, for another host, or without a sender is one refusal",
        arguments: [
            ("laptop/tank/root", "spooler", "a restore from spooler, which is not this laptop's backupsvr (backupsvr)"),
            ("laptop/tank/root", "laptop", "a restore from this laptop itself, which is not this laptop's backupsvr"),
            ("other/tank/root", "backupsvr", "other/tank/root is not laptop/DATASET, a dataset of this laptop"),
            ("laptop", "backupsvr", "laptop is not laptop/DATASET"),
            ("laptop/../x", "backupsvr", "has a . or .. component"),
            ("laptop/tank/root", "", "NNCP_SENDER is not set"),
        ])
    func refused(destination: String, sender: String, problem: String) {
        let id = sender.isEmpty ? "" : world.nodes.id(sender)
        #expect {
            _ = try receiver().authorize(destination: destination, senderID: id)
        } throws: { error in
            "\(error)".contains(problem) && "\(error)".hasPrefix("refused: ") && !"\(error)".contains("\n")
        }
    }

    @Test("ferry send leaves out everything under the restore root, the default one or [restore] into under a sent dataset")
    func sendLeavesRestoresOut() throws {
        var context = world.context(role: .laptop, as: "laptop", peer: "spooler")
        let plain = SnapshotSender(context: context, nncp: world.nodes.config(of: "laptop"))
        #expect(plain.isRestore("tank/ferry-restore/tank/root"))
        #expect(plain.isRestore("tank/ferry-restore"))
        #expect(!plain.isRestore("tank/root"))
        #expect(!plain.isRestore("tank/ferry-restored"))
        context.config.restore.into = try DatasetName("tank/root/restores")
        let inside = SnapshotSender(context: context, nncp: world.nodes.config(of: "laptop"))
        #expect(inside.isRestore("tank/root/restores/tank/root/home"))
        #expect(!inside.isRestore("tank/root"))
        #expect(!inside.isRestore("tank/ferry-restore/x"))
    }
}

@Suite("ferry restore at backupsvr: where a restore goes")
struct RestoreSenderTests {
    let world = FakeWorld()

    @Test("a dataset no sender writes under, or a laptop that is no NNCP node, is one error line and nothing is run")
    func noSender() async throws {
        var context = world.context()
        context.config.receive.senders = ["laptop": "laptop", "ghost": "ghost"]
        let sender = RestoreSender(context: context, nncp: world.nodes.config(of: "backupsvr"))
        await #expect {
            _ = try await sender.restore(try DatasetName("other/tank/root"), snapshot: nil, from: nil)
        } throws: { error in
            "\(error)".contains("no sender in [receive].senders of /etc/ferry/ferry.toml writes under other/tank/root")
        }
        await #expect {
            _ = try await sender.restore(try DatasetName("ghost/tank/root"), snapshot: nil, from: nil)
        } throws: { error in
            "\(error)" == "sender ghost of [receive].senders is not a node in /etc/nncp-backupsvr.hjson"
        }
        #expect(world.runner.calls.isEmpty)
    }
}
