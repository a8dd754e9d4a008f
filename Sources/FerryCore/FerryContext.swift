import Logging

/// Everything a command needs, passed to each: the config and the side
/// effects, each behind a small protocol so that unit tests can fake it.
public struct FerryContext: Sendable {
    public var config: FerryConfig
    public var runner: any CommandRunner
    public var inspector: any DeviceInspector
    public var mounter: any Mounter
    public var clock: any WallClock
    public var nncpSource: any NNCPConfigSource
    public var logger: Logger

    public init(
        config: FerryConfig,
        runner: any CommandRunner = SubprocessRunner(),
        inspector: any DeviceInspector = SystemDeviceInspector(),
        mounter: any Mounter = LinuxMounter(),
        clock: any WallClock = SystemClock(),
        nncpSource: (any NNCPConfigSource)? = nil,
        logger: Logger = Logger(label: "ferry")
    ) {
        self.config = config
        self.runner = runner
        self.inspector = inspector
        self.mounter = mounter
        self.clock = clock
        self.nncpSource = nncpSource ?? NNCPConfigLoader(runner: runner)
        self.logger = logger
    }

    /// This host's NNCP config, read through nncp-cfgdir.
    public func nncpConfig() async throws -> NNCPConfig {
        var nncp = try await nncpSource.load(path: config.nncpConfig, configKey: "nncp-config in \(config.path)")
        nncp.configuredName = config.name
        return nncp
    }

    /// The backup drives enrolled on this host.
    public var drives: DriveRegistry { DriveRegistry(stateDir: config.stateDir) }
}
