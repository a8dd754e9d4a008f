public struct DemoStory: Sendable { public var keepScratch: Bool; public init(keepScratch: Bool) { self.keepScratch = keepScratch }; public func run() async throws {} }
