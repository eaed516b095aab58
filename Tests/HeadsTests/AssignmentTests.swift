import XCTest
import Numerics
import Heads

final class AssignmentTests: XCTestCase {
    /// The minimum over every injective map targets → queries, by enumeration.
    func bruteForce(_ cost: [Float], queries: Int, targets: Int) -> Double {
        var best = Double.infinity
        var used = [Bool](repeating: false, count: queries)
        func go(_ g: Int, _ acc: Double) {
            if g == targets { best = min(best, acc); return }
            for q in 0..<queries where !used[q] {
                used[q] = true
                go(g + 1, acc + Double(cost[q * targets + g]))
                used[q] = false
            }
        }
        go(0, 0)
        return best
    }

    func testSolverMatchesBruteForceOnRandomRectangularMatrices() {
        var rng = RandomGenerator(seed: 3)
        for trial in 0..<600 {
            let targets = rng.integer(below: 6)          // 0 … 5
            let queries = targets + rng.integer(below: 4) // ≥ targets, ≤ 8
            if queries == 0 { continue }
            var cost = [Float](repeating: 0, count: queries * targets)
            let integerCosts = trial % 3 == 0            // many ties
            for i in cost.indices {
                cost[i] = integerCosts ? Float(rng.integer(below: 4)) : rng.uniform(-5, 5)
            }
            let a = Assignment.solve(cost: cost, queries: queries, targets: targets)
            XCTAssertEqual(a.count, targets)
            XCTAssertEqual(Set(a).count, targets, "distinct queries")
            XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 < queries })
            XCTAssertEqual(Assignment.totalCost(a, cost: cost, targets: targets),
                           bruteForce(cost, queries: queries, targets: targets), accuracy: 1e-9,
                           "trial \(trial): \(queries)×\(targets)")
        }
    }

    func testSolverHandlesHundredQueriesQuickly() {
        // The head's real size: 100 queries, up to 19 targets; optimal against a known plant.
        var rng = RandomGenerator(seed: 4)
        let q = 100, g = 19
        var cost = (0..<(q * g)).map { _ in rng.uniform(1, 2) }
        var planted: [Int] = []
        var free = Array(0..<q)
        for t in 0..<g {
            let k = free.remove(at: rng.integer(below: free.count))
            planted.append(k)
            cost[k * g + t] = 0   // zero cost, every other entry ≥ 1: the plant is the unique optimum
        }
        XCTAssertEqual(Assignment.solve(cost: cost, queries: q, targets: g), planted)
    }
}
