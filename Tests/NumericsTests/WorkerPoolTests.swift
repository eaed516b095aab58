import Foundation
import Numerics
import XCTest

/// `Parallel.forEach` runs on persistent spinning workers (`WorkerPool`): these tests drive
/// the hand-offs that can go wrong — back-to-back regions, regions of different widths
/// (workers that sit one out must not run a later region twice), wake-ups after the
/// workers went to sleep, and two threads opening regions at once.
final class WorkerPoolTests: XCTestCase {
    private func withThreads(_ n: Int, _ body: () -> Void) {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = n
        body()
    }

    /// Runs one region over `count` indices and returns how often each index was visited.
    private static func visits(_ count: Int, grain: Int = 1) -> [Int32] {
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        defer { hits.deallocate() }
        hits.initialize(repeating: 0, count: count)
        Parallel.forEach(count, grain: grain) { range in
            for i in range { hits[i] += 1 }
        }
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    func testThousandsOfBackToBackRegionsOfVaryingWidthVisitEveryIndexOnce() {
        withThreads(4) {
            for r in 0..<5000 {
                // Widths 1…4 parts (count / grain), so workers alternately join and sit out.
                let count = 8 + r % 29, grain = [1, count / 2, count / 3, count][r % 4]
                let hits = Self.visits(count, grain: Swift.max(1, grain))
                XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "region \(r): \(hits)")
                if hits.contains(where: { $0 != 1 }) { return }
            }
        }
    }

    func testRegionsAfterTheWorkersFellAsleepStillRun() {
        withThreads(3) {
            for _ in 0..<20 {
                usleep(2_000)   // ≫ the workers' spin time: they are blocked on the condition
                XCTAssertTrue(Self.visits(300).allSatisfy { $0 == 1 })
            }
        }
    }

    func testRegionsOpenedFromTwoThreadsAtOnceBothComplete() {
        withThreads(2) {
            let group = DispatchGroup()
            // Each thread writes only its own slot; read after both have left the group.
            nonisolated(unsafe) let failures = UnsafeMutablePointer<Int>.allocate(capacity: 2)
            defer { failures.deallocate() }
            failures.initialize(repeating: 0, count: 2)
            for t in 0..<2 {
                group.enter()
                let thread = Thread {
                    for _ in 0..<2000 where !Self.visits(64).allSatisfy({ $0 == 1 }) { failures[t] += 1 }
                    group.leave()
                }
                thread.start()
            }
            XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
            XCTAssertEqual(failures[0] + failures[1], 0)
        }
    }

    func testWorkOnTheWorkersIsVisibleToTheCallerAfterTheRegion() {
        // Each part writes its own slots; the caller reads them right after forEach returns.
        withThreads(4) {
            let n = 4096
            let values = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { values.deallocate() }
            for round in 0..<200 {
                Parallel.forEach(n, grain: 256) { range in
                    for i in range { values[i] = Float(i + round) }
                }
                var wrong = 0
                for i in 0..<n where values[i] != Float(i + round) { wrong += 1 }
                XCTAssertEqual(wrong, 0, "round \(round)")
                if wrong > 0 { return }
            }
        }
    }
}
