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
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),

        // Dependencies run one way, level by level (docs/modules.md): Core and Numerics; the
        // file formats, Config, RunIO, Layers, Distributed; Backbone, PEFT, Heads, Data;
        // Synthetic, Evaluation; Training, Visualization; the CLI.
        // Re-executes the CLI with OPENBLAS_CORETYPE set when OpenBLAS fell back to generic
        // kernels (kernel_choice.c); linked into the CLI only. It reads CBLAS's shim.h (one list
        // of generic kernel families for it and `BLAS.runsGenericKernels`), hence the path.
        .target(name: "BLASKernelChoice", dependencies: ["CBLAS"], cSettings: [.headerSearchPath("../CBLAS")]),
        .target(name: "Core", swiftSettings: fast),
        // Our own matrix product (packed panels, bits independent of the split); C for the
        // SIMD intrinsics, each kernel compiled for its instruction set by a target attribute.
        .target(name: "CPanelProduct"),
        .target(name: "Numerics", dependencies: ["CBLAS", "CPanelProduct"], swiftSettings: fast),
        .target(name: "HDF5", dependencies: ["Core", "Numerics", "CHDF5"], swiftSettings: fast),
        .target(name: "Config", dependencies: ["Core", "Numerics", .product(name: "Yams", package: "Yams")], swiftSettings: fast),
        .target(name: "RunIO", dependencies: ["Core", .product(name: "Logging", package: "swift-log")],
                swiftSettings: fast),
        .target(name: "ImageIO", dependencies: ["Core", "CPNG", "CTurboJPEG"], swiftSettings: fast),
        .target(name: "Layers", dependencies: ["Numerics"], swiftSettings: fast),
        .target(name: "Distributed", dependencies: ["Numerics", "CMPI"], swiftSettings: fast),
        .target(name: "Backbone", dependencies: [
            "Core", "Numerics", "Layers", "HDF5", "Config",
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ], swiftSettings: fast),
        .target(name: "PEFT", dependencies: ["Core", "Numerics", "Layers", "Config"], swiftSettings: fast),
        .target(name: "Heads", dependencies: ["Numerics", "Layers", "Config"], swiftSettings: fast),
        .target(name: "Data", dependencies: [
            "Core", "Numerics", "Config", "ImageIO", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),
        .target(name: "Synthetic", dependencies: ["Core", "Numerics", "ImageIO", "Data"], swiftSettings: fast),
        .target(name: "Evaluation", dependencies: ["Core", "Numerics", "Distributed", "ImageIO", "Data"],
                swiftSettings: fast),
        .target(name: "Training", dependencies: [
            "Core", "Numerics", "Layers", "HDF5", "Config", "RunIO", "Distributed", "Backbone", "PEFT", "Heads",
            "ImageIO", "Data", "Synthetic", "Evaluation", "CCrypto",
        ], swiftSettings: fast),
        .target(name: "Visualization", dependencies: ["Core", "Numerics", "HDF5", "ImageIO", "Data", "Evaluation", "PEFT", "Backbone"],
                swiftSettings: fast),
        .executableTarget(name: "CausalTuneCLI", dependencies: [
            "Core", "Numerics", "Layers", "HDF5", "Config", "RunIO", "Distributed", "Backbone", "PEFT", "Heads",
            "ImageIO", "Data", "Synthetic", "Evaluation", "Training", "Visualization", "BLASKernelChoice",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),
        // The libFuzzer harness of the file readers; `launch/fuzz` builds it with the fuzzer
        // and address sanitizers (a plain build gives a stub that says so).
        .executableTarget(name: "fuzz-readers", dependencies: [
            "Backbone", "Config", "Data", "ImageIO", "Training", "Numerics", .product(name: "Logging", package: "swift-log"),
        ],
                          path: "Fuzz", exclude: ["corpus", "make_corpus.py"]),
        // A tiny MPI program the tests start under `mpirun -np 2`.
        .executableTarget(name: "communicator-check", dependencies: ["Core", "Distributed", "Numerics"],
                          path: "Sources/CommunicatorCheck", swiftSettings: fast),

        // The programs the tests start (the CLI, communicator-check, mpirun): one environment,
        // one deadline, a missing binary fails.
        .target(name: "ChildProcesses", path: "Tests/ChildProcesses"),
        .testTarget(name: "NumericsTests", dependencies: ["Numerics"], exclude: ["make_resample_fixture.py"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "Numerics"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "Core", "Numerics", "Data", "ChildProcesses"]),
        .testTarget(name: "RunIOTests", dependencies: [
            "RunIO", "Core", "ChildProcesses", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Core", "Training"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Numerics", "ChildProcesses"]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbone", "Core", "HDF5", "ImageIO", "Layers", "Numerics"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "PEFTTests", dependencies: ["PEFT", "Core", "Config", "Layers", "Numerics"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DataTests", dependencies: [
            "Core", "Numerics", "ImageIO", "Data", "Synthetic", "Evaluation", "ChildProcesses",
            .product(name: "Logging", package: "swift-log"),
        ],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: [
            "Training", "Core", "Numerics", "Layers", "HDF5", "Config", "RunIO", "ImageIO", "Backbone", "PEFT", "Heads", "Data",
            "Distributed", "ChildProcesses",
        ], resources: [.copy("Fixtures")]),
        .testTarget(name: "HeadsTests", dependencies: ["Heads", "Layers", "Numerics", "Training"],
                    exclude: ["make_deformable_fixture.py", "make_loss_fixture.py", "make_decoder_fixture.py", "make_head_fixture.py"], resources: [.copy("Fixtures")]),
        .testTarget(name: "VisualizationTests", dependencies: [
            "Visualization", "Core", "Numerics", "HDF5", "ImageIO", "Data", "Evaluation", "PEFT", "Backbone",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
