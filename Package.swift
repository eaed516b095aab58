// swift-tools-version:6.0
import Foundation
import PackageDescription

// Dependency direction (STYLE.md): numerics → layers → backbone / PEFT / heads → data →
// training & distribution → CLI. The CLI is thin.
/// Release builds drop exclusivity checks in hot loops (they run on unsafe buffer pointers
/// anyway); the numeric tests run against the same build.
///
/// On an x86-64 machine with AVX2 + FMA ("x86-64-v3", any x86 server CPU since 2013) they
/// also target that instruction set: our elementwise kernels (GELU, softmax, LayerNorm,
/// the Causal-Tune layer's loops) are SIMD8 code that otherwise compiles to 4-wide SSE2
/// (measured: ViT-S step 4–8 % faster). The binary then needs such a CPU; to build one for
/// any x86-64 machine, add `-Xswiftc -target-cpu -Xswiftc x86-64` (the last flag wins).
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"] + hostVectorFlags,
                                         .when(configuration: .release))]

var hostVectorFlags: [String] {
    #if arch(x86_64) && os(Linux)
    guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    let have = Set(flags.split(separator: " ").map(String.init))
    return ["avx", "avx2", "fma", "bmi2", "f16c", "movbe"].allSatisfy(have.contains) ? ["-target-cpu", "haswell"] : []
    #else
    return []
    #endif
}

let package = Package(
    name: "causal-tune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "causal-tune", targets: ["CausalTuneCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        // System libraries (Debian packages), each with a shim header for the macros
        // Swift cannot import.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),

        .target(name: "Numerics", dependencies: ["CBLAS"], swiftSettings: fast),
        .target(name: "Layers", dependencies: ["Numerics"], swiftSettings: fast),
        .target(name: "Support", dependencies: [
            "Numerics", "CHDF5",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),
        .target(name: "Distributed", dependencies: ["Numerics", "CMPI"], swiftSettings: fast),
        .target(name: "Backbone", dependencies: [
            "Numerics", "Layers", "Support",
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ], swiftSettings: fast),
        .target(name: "PEFT", dependencies: ["Numerics", "Layers", "Support"], swiftSettings: fast),
        .target(name: "Heads", dependencies: ["Numerics", "Layers", "Support"], swiftSettings: fast),
        .target(name: "Data", dependencies: ["Numerics", "Support", "Distributed", "CPNG", "CTurboJPEG"],
                swiftSettings: fast),
        .target(name: "Training", dependencies: [
            "Numerics", "Layers", "Support", "Distributed", "Backbone", "PEFT", "Heads", "Data",
        ], swiftSettings: fast),
        .target(name: "Visualization", dependencies: ["Numerics", "Support", "Data", "PEFT"], swiftSettings: fast),
        .executableTarget(name: "CausalTuneCLI", dependencies: [
            "Numerics", "Layers", "Support", "Distributed", "Backbone", "PEFT", "Heads", "Data", "Training",
            "Visualization",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),
        // The libFuzzer harness of the file readers; `launch/fuzz` builds it with the fuzzer
        // and address sanitizers (a plain build gives a stub that says so).
        .executableTarget(name: "fuzz-readers", dependencies: ["Backbone", "Data", "Support", "Training", "Numerics"],
                          path: "Fuzz", exclude: ["corpus", "make_corpus.py"]),
        // A tiny MPI program the tests start under `mpirun -np 2`.
        .executableTarget(name: "communicator-check", dependencies: ["Distributed", "Numerics"],
                          path: "Sources/CommunicatorCheck", swiftSettings: fast),

        // The programs the tests start (the CLI, communicator-check, mpirun): one environment,
        // one deadline, a missing binary fails.
        .target(name: "ChildProcesses", path: "Tests/ChildProcesses"),
        .testTarget(name: "NumericsTests", dependencies: ["Numerics"], exclude: ["make_resample_fixture.py"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "Numerics"]),
        .testTarget(name: "SupportTests", dependencies: ["Support", "Numerics", "ChildProcesses"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Numerics", "ChildProcesses"]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbone", "Layers", "Numerics", "Support", "Data"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "PEFTTests", dependencies: ["PEFT", "Layers", "Numerics", "Support"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DataTests", dependencies: ["Data", "Numerics", "Support", "ChildProcesses"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: [
            "Training", "Numerics", "Layers", "Support", "Backbone", "PEFT", "Heads", "Data", "Distributed", "ChildProcesses",
        ], resources: [.copy("Fixtures")]),
        .testTarget(name: "HeadsTests", dependencies: ["Heads", "Layers", "Numerics", "Support"],
                    exclude: ["make_deformable_fixture.py", "make_loss_fixture.py", "make_decoder_fixture.py", "make_head_fixture.py"], resources: [.copy("Fixtures")]),
        .testTarget(name: "VisualizationTests", dependencies: ["Visualization", "Numerics", "Support", "Data", "PEFT"]),
    ],
    swiftLanguageModes: [.v5]
)
