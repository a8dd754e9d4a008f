// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "ferry",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "FerryCore", targets: ["FerryCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        .systemLibrary(name: "CBlkid", pkgConfig: "blkid", providers: [.apt(["libblkid-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .target(name: "CLinuxShims"),
        .target(
            name: "FerryCore",
            dependencies: [
                "CUdev",
                "CBlkid",
                "CSodium",
                "CLinuxShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        // `ferry demo` and the integration tests' test bed: pools, loop
        // devices and NNCP nodes made from nothing, kept out of FerryCore.
        .target(name: "FerryDemo", dependencies: ["FerryCore", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryCore",
                "FerryDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "ferry-bench", dependencies: ["FerryCore"]),
        // The fuzz targets: scripts/fuzz builds this with -sanitize=fuzzer.
        .executableTarget(name: "ferry-fuzz", dependencies: ["FerryCore"]),
        .testTarget(
            name: "FerryCoreTests",
            dependencies: [
                "FerryCore", "FerryDemo", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "FerryIntegrationTests",
            dependencies: ["FerryCore", "FerryDemo", "ferry", .product(name: "Crypto", package: "swift-crypto")]),
    ]
)
