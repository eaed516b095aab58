import Foundation
import XCTest

/// The CLI's own choice of OpenBLAS kernels (target `BLASKernelChoice`): started without
/// `OPENBLAS_CORETYPE` — as a user who skips `launch/env.sh` would — it must not run OpenBLAS's
/// generic kernels on a CPU with AVX2 + FMA, alone or under mpirun; a kernel the user names
/// stands. On CPUs that OpenBLAS recognises it never had generic kernels, so the first check
/// holds there as well; on this project's VMs it is the re-execution that makes it hold.
final class BLASKernelChoiceTests: XCTestCase {
    static let generic: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                       "katmai", "coppermine", "northwood", "banias"]

    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ct-kernel-choice-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try BenchmarkTests.yaml.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// The kernel family `bench` reports ("OpenBLAS kernels: NAME …").
    func kernels(ranks: Int = 1, coreType: String?) throws -> String {
        let r = try CommandLineRunner.run(["bench", "--config", dir + "/tiny.yaml", "--steps", "1", "--warmup", "0",
                                           "--peak-size", "64"],
                                          ranks: ranks, environmentChanges: ["OPENBLAS_CORETYPE": coreType])
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.output.split(separator: "\n").first { $0.contains("OpenBLAS kernels: ") }, r.output)
        let name = line.components(separatedBy: "OpenBLAS kernels: ")[1].split(separator: " ").first ?? ""
        return String(name)
    }

    func testWithoutACoreTypeTheCLIRunsNoGenericKernelsOnAnAVX2CPU() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        guard flags.contains("avx2") && flags.contains("fma") else {
            throw XCTSkip("the CPU has no AVX2 + FMA: generic kernels are all OpenBLAS has for it")
        }
        let alone = try kernels(coreType: nil)
        XCTAssertFalse(Self.generic.contains(alone.lowercased()), alone)
        let underMPI = try kernels(ranks: 2, coreType: nil)
        XCTAssertEqual(underMPI, alone)
    }

    func testAKernelTheUserNamesStands() throws {
        XCTAssertEqual(try kernels(coreType: "Prescott"), "Prescott")
    }
}
