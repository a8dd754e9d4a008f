import Foundation
import Logging

/// nncp-toss on this host's spool: it applies what arrived. At backupsvr it
/// runs `ferry receive` for every stream, which can take hours, so it runs
/// after the stick is out, where pulling the stick cannot stop it.
public struct TossRun: Sendable {
    public static let reportFile = "last-toss.json"
    /// The unit that runs `ferry toss` outside the device-bound visit.
    public static let unit = "ferry-toss.service"

    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    /// Under systemd the toss goes to its own unit: `BindsTo=` stops the
    /// visit's unit when the stick is pulled, and would stop the toss with
    /// it. Elsewhere (the tests, a shell) it runs here and now.
    func launchAfterVisit() async {
        let underSystemd =
            ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil
            && FileManager.default.fileExists(atPath: "/run/systemd/system")
        if underSystemd {
            do {
                try await context.runner.check(Systemctl.startNoBlock(Self.unit))
                context.logger.info("the toss runs on in \(Self.unit)")
                return
            } catch {
                context.logger.warning("could not start \(Self.unit) (\(error)); tossing here instead")
            }
        }
        do {
            _ = try await run()
        } catch {
            context.logger.error("toss failed: \(error)")
        }
    }

    /// Tosses under the spool lock, and keeps the result for the next visit.
    public func run() async throws -> TossReport {
        let lock = try await HostLock.acquire(.spool, stateDir: context.config.stateDir, logger: context.logger)
        defer { withExtendedLifetime(lock) {} }
        let started = context.clock.now().rfc3339
        VisitProgress(logger: context.logger).step("tossing: applying what arrived")
        let result = try await context.runner.run(NNCP.toss(config: nncp.path, timeout: nil).asUser(context.config.nncpUser), input: nil)
        let errors = String(decoding: result.standardError + result.standardOutput, as: UTF8.self)
            .split(separator: "\n").filter { $0.contains("ERROR") }.map { printable(String($0), limit: 300) }
        let report = TossReport(
            started: started, finished: context.clock.now().rfc3339, status: "\(result.status)",
            succeeded: result.status.succeeded && errors.isEmpty, errors: errors)
        try StateFile(Self.reportFile, stateDir: context.config.stateDir).write(report)
        if context.config.role == .backupsvr {
            // What the toss received changed what each laptop should know;
            // the message goes out with the next stick.
            do {
                try await LaptopStates(context: context, nncp: nncp).queueChanged()
            } catch {
                context.logger.warning("could not queue the laptops' state messages: \(error)")
            }
        }
        if report.succeeded {
            context.logger.info("toss done")
        } else {
            context.logger.warning(
                "toss finished with errors; failed packets stay queued and the next toss retries them",
                metadata: ["status": "\(result.status)", "errors": "\(errors.count)", "last": "\(errors.last ?? result.errorTail())"])
        }
        return report
    }
}
