import Foundation
import Numerics
import XCTest

/// The scaling model (`ScalingModel.measure`): regions cut as for T workers, run in turn on
/// the calling thread, timed part by part — with the same bits as without it.
final class ScalingModelTests: XCTestCase {
    /// Busy-waits `seconds` of this thread's CPU time (what the model times).
    private static func spin(_ seconds: Double) {
        let end = ScalingModel.threadCPUSeconds() + seconds
        while ScalingModel.threadCPUSeconds() < end {}
    }

    func testForEachVisitsEveryIndexOnceInTheChunksOfTWorkersOnTheCallingThread() {
        for (count, grain, t) in [(100, 1, 8), (7, 1, 64), (1000, 100, 64), (64, 1, 64), (3, 1, 2), (1, 1, 16)] {
            var ranges = [Range<Int>]()
            let caller = Thread.current
            let sites = ScalingModel.measure(threads: t) {
                XCTAssertEqual(Parallel.threads, t)
                Parallel.forEach(count, grain: grain) { r in
                    XCTAssertTrue(Thread.current === caller)
                    ranges.append(r)
                }
            }
            let workers = Swift.min(t, Swift.max(1, count / grain))
            let chunk = (count + workers - 1) / workers
            let want = stride(from: 0, to: count, by: chunk).map { $0..<Swift.min(count, $0 + chunk) }
            XCTAssertEqual(ranges, want, "count \(count) grain \(grain) T \(t)")
            // A region of one worker runs inline: not a region in the model either.
            XCTAssertEqual(sites.map(\.regions), workers > 1 ? [1] : [], "count \(count) T \(t)")
            XCTAssertEqual(sites.first?.file ?? "NumericsTests/ScalingModelTests.swift", "NumericsTests/ScalingModelTests.swift")
        }
        XCTAssertFalse(Parallel.isInsideRegion)
    }

    func testTheLargestPartOfAnUnevenRegionIsRecorded() {
        // Parts of 2, 4, 6 and 8 ms: one thread 20 ms, four workers wait for the 8 ms part.
        let sites = ScalingModel.measure(threads: 4) {
            Parallel.forEach(4) { r in
                XCTAssertTrue(Parallel.isInsideRegion)
                for i in r { ScalingModelTests.spin(0.002 * Double(i + 1)) }
            }
        }
        XCTAssertEqual(sites.count, 1)
        let s = sites[0]
        XCTAssertEqual(s.regions, 1)
        XCTAssertGreaterThanOrEqual(s.serialSeconds, 0.020)
        XCTAssertGreaterThanOrEqual(s.largestSeconds, 0.008)
        // The other three parts (12 ms) are not in the largest one.
        XCTAssertLessThanOrEqual(s.largestSeconds, s.serialSeconds - 0.012 + 1e-6)
    }

    func testDynamicItemsAreListScheduledOntoTheWorkerThatIsFreeFirst() {
        // Items of 10, 1, 1, 1, 1, 1 ms on two workers: the first keeps worker 0 busy while
        // worker 1 takes all the others (5 ms); the region lasts as long as the first item.
        let durations = [0.010, 0.001, 0.001, 0.001, 0.001, 0.001]
        var workers = [Int](repeating: -1, count: durations.count)
        let sites = ScalingModel.measure(threads: 2) {
            Parallel.forEachDynamic(durations.count, workers: 2) { item, w in
                workers[item] = w
                ScalingModelTests.spin(durations[item])
            }
        }
        XCTAssertEqual(workers, [0, 1, 1, 1, 1, 1])
        XCTAssertEqual(sites.count, 1)
        XCTAssertGreaterThanOrEqual(sites[0].largestSeconds, 0.010)
        XCTAssertGreaterThanOrEqual(sites[0].serialSeconds, 0.015)
        XCTAssertLessThanOrEqual(sites[0].largestSeconds, sites[0].serialSeconds - 0.005 + 1e-6)
    }

    func testDynamicItemsRunOnceEachWithAndWithoutTheModel() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for modelled in [false, true] {
            Parallel.threads = 4
            let hits = UnsafeMutablePointer<Int32>.allocate(capacity: 37)
            defer { hits.deallocate() }
            hits.initialize(repeating: 0, count: 37)
            let run = { Parallel.forEachDynamic(37, workers: 3) { item, w in
                XCTAssertTrue(w >= 0 && w < 3)
                hits[item] += 1
            } }
            if modelled { _ = ScalingModel.measure(threads: 8, run) } else { run() }
            XCTAssertTrue((0..<37).allSatisfy { hits[$0] == 1 }, "modelled \(modelled)")
        }
    }

    func testProductsAndKernelsGiveTheSameBitsWithTheModelOnAndOff() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        var rng = RandomGenerator(seed: 5)
        let (m, n, k) = (203, 370, 150)
        XCTAssertGreaterThan(ProductTiling(m: m, n: n, k: k).count, 1)
        let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [k, n])
        rng.fillUniform(a, -1, 1)
        rng.fillUniform(b, -1, 1)
        func compute() -> [Float] {
            let c = Tensor(zeros: [m, n])
            BLAS.matmul(a, b, into: c)
            Kernels.softmaxRows(c.data, rows: m, cols: n)
            // A region nested in another runs inline, as on a worker.
            Parallel.forEach(m) { r in
                for i in r { BLAS.gemm(transposeA: false, transposeB: true, m: 1, n: 1, k: n, a: c.data + i * n, lda: n,
                                       b: c.data + i * n, ldb: n, beta: 1, c: c.data + i * n, ldc: n) }
            }
            return Array(UnsafeBufferPointer(start: c.data, count: c.count))
        }
        Parallel.threads = 1
        let one = compute()
        Parallel.threads = 2
        XCTAssertEqual(compute(), one)
        for t in [2, 8, 64] {
            var got = [Float]()
            let sites = ScalingModel.measure(threads: t) { got = compute() }
            XCTAssertEqual(got, one, "model at T = \(t)")
            XCTAssertTrue(sites.contains { $0.file == "Numerics/BLAS.swift" }, "\(sites)")
            XCTAssertEqual(Parallel.threads, 2)
        }
    }
}
