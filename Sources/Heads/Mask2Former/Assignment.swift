/// Exact minimum-cost assignment for a rectangular cost matrix (what
/// `scipy.optimize.linear_sum_assignment` solves for mmdet's `HungarianAssigner`):
///
///     cost [Q, G], Q ≥ G (queries × targets)
///     find distinct q(0), …, q(G−1) minimising Σ_g cost[q(g), g]
///
/// Every target is matched to exactly one query; `Q − G` queries stay unmatched. The solver
/// is the shortest-augmenting-path Hungarian method with row/column potentials
/// (Jonker–Volgenant style, O(G²·Q)): targets are added one at a time, and for each a
/// Dijkstra-like search over reduced costs `c(q, g) − u(g) − v(q)` (all ≥ 0) finds the
/// cheapest augmenting path from the new target to a free query. Potentials and costs are
/// kept in Double so that near-ties among Float costs are resolved exactly as far as the
/// Float inputs allow.
public enum Assignment {
    /// For each target `g`, the query assigned to it. `cost` is row-major [queries, targets].
    /// Non-finite costs are a programmer error (callers produce finite costs).
    public static func solve(cost: [Float], queries: Int, targets: Int) -> [Int] {
        precondition(cost.count == queries * targets, "Assignment: \(cost.count) costs for [\(queries), \(targets)]")
        precondition(queries >= targets, "Assignment: \(queries) queries for \(targets) targets")
        if targets == 0 { return [] }
        let n = targets, m = queries
        // 1-based arrays as in the classical formulation; index 0 is the virtual source.
        var u = [Double](repeating: 0, count: n + 1)      // target potentials
        var v = [Double](repeating: 0, count: m + 1)      // query potentials
        var owner = [Int](repeating: 0, count: m + 1)     // owner[q] = target matched to query q (0 = free)
        var way = [Int](repeating: 0, count: m + 1)
        var minv = [Double](repeating: 0, count: m + 1)
        var used = [Bool](repeating: false, count: m + 1)
        cost.withUnsafeBufferPointer { c in
            for g in 1...n {
                owner[0] = g
                var q0 = 0
                for j in 0...m { minv[j] = .infinity; used[j] = false }
                repeat {
                    used[q0] = true
                    let g0 = owner[q0]
                    var delta = Double.infinity, q1 = 0
                    for q in 1...m where !used[q] {
                        let reduced = Double(c[(q - 1) * n + (g0 - 1)]) - u[g0] - v[q]
                        if reduced < minv[q] { minv[q] = reduced; way[q] = q0 }
                        if minv[q] < delta { delta = minv[q]; q1 = q }
                    }
                    for q in 0...m {
                        if used[q] { u[owner[q]] += delta; v[q] -= delta } else { minv[q] -= delta }
                    }
                    q0 = q1
                } while owner[q0] != 0
                // Augment along the path back to the source.
                repeat {
                    let q1 = way[q0]
                    owner[q0] = owner[q1]
                    q0 = q1
                } while q0 != 0
            }
        }
        var result = [Int](repeating: -1, count: n)
        for q in 1...m where owner[q] != 0 { result[owner[q] - 1] = q - 1 }
        return result
    }

    /// The total cost of an assignment returned by `solve`.
    public static func totalCost(_ assignment: [Int], cost: [Float], targets: Int) -> Double {
        var s = 0.0
        for (g, q) in assignment.enumerated() { s += Double(cost[q * targets + g]) }
        return s
    }
}
