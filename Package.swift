// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "vestnik",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vestnik", targets: ["vestnik"]),
        .executable(name: "vestnik-bench", targets: ["vestnik-bench"]),
        .library(name: "VestnikKit", targets: ["VestnikKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
    ],
    targets: [
        // Pure domain vocabulary: IDs, synced state, realtime events. No I/O.
        .target(name: "VestnikModel", swiftSettings: strict),
        // Wire DTOs of the client API.
        .target(name: "VestnikAPI", dependencies: ["VestnikModel"], swiftSettings: strict),
        // Domain services, rules, ports.
        .target(
            name: "VestnikCore",
            dependencies: [
                "VestnikModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "VestnikStoreSQLite",
            dependencies: ["VestnikCore", "VestnikModel", "CSQLite"],
            swiftSettings: strict
        ),
        .target(
            name: "VestnikStorePostgres",
            dependencies: [
                "VestnikCore", "VestnikModel",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "VestnikHTTP",
            dependencies: [
                "VestnikCore", "VestnikAPI", "VestnikModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The eXpress BotX-compatible bot API and server→bot delivery (decision 0004).
        .target(
            name: "VestnikBotX",
            dependencies: [
                "VestnikCore", "VestnikModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "VestnikServer",
            dependencies: [
                "VestnikCore", "VestnikHTTP", "VestnikBotX", "VestnikStoreSQLite", "VestnikStorePostgres", "VestnikModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Resources/openapi.json"), .copy("Resources/web")],
            swiftSettings: strict
        ),
        .target(
            name: "VestnikKit",
            dependencies: [
                "VestnikAPI", "VestnikModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "vestnik",
            dependencies: [
                "VestnikServer", "VestnikKit", "VestnikCore", "VestnikAPI", "VestnikModel", "CMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "vestnik-bench",
            dependencies: [
                "VestnikKit", "VestnikAPI", "VestnikModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/VestnikBench",
            swiftSettings: strict
        ),
        .target(
            name: "VestnikStoreTesting",
            dependencies: ["VestnikCore", "VestnikModel", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/VestnikStoreTesting",
            swiftSettings: strict
        ),
        .testTarget(
            name: "VestnikCoreTests",
            dependencies: ["VestnikCore", "VestnikModel", "VestnikStoreSQLite", "VestnikStoreTesting", "CSQLite", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VestnikBotXTests",
            dependencies: ["VestnikBotX", "VestnikCore", "VestnikModel", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VestnikStorePostgresTests",
            dependencies: [
                "VestnikCore", "VestnikModel", "VestnikStorePostgres", "VestnikStoreTesting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VestnikIntegrationTests",
            dependencies: [
                "VestnikServer", "VestnikKit", "VestnikAPI", "VestnikModel", "VestnikCore", "VestnikStorePostgres", "VestnikBotX",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "VestnikHTTP",
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
