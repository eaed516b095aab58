import Foundation
import Numerics
import Layers

/// Mask2Former's training targets and losses (mmdet `Mask2FormerHead.loss_by_feat_single`
/// with mmseg's semantic-segmentation targets), for one set of predictions (one decoder layer):
///
/// **Targets** (mmseg `_seg_data_to_instance_data`): per image, one binary mask `label == c`
/// for each class `c < K` present in the label map (255 and ids ≥ K belong to no mask).
///
/// **Matching** per image (`HungarianAssigner`): P_m = 12 544 points drawn uniformly in [0, 1]²,
/// the same for every query and target; x = point-sampled mask logits [Q, P_m], t = point-sampled
/// target masks [G, P_m]; with softplus(z) = log(1 + eᶻ), σ the sigmoid,
///
///     cost[q, g] = 2 · (−softmax(class_q)[c_g])
///                + 5 · (Σ_p softplus(−x_qp) t_gp + softplus(x_qp)(1 − t_gp)) / P_m
///                + 5 · (1 − (2 Σ_p σ(x_qp) t_gp + 1) / (Σ_p σ(x_qp) + Σ_p t_gp + 1))
///
/// and the exact assignment (`Assignment`) gives each target its query.
///
/// **Losses** over the batch, M = max(1, number of target masks, averaged over ranks):
///
///     L_cls  = 2 · Σ_{b,q} w_{y} CE(class_{bq}, y_{bq}) / Σ_{b,q} w_{y}   y = matched class or K (no object);
///                                                                         w = 1, w_K = 0.1
///     points: per matched (query, target) pair, P = 12 544 importance-sampled points (below)
///     L_mask = 5 · Σ_{i,p} BCE(x_ip, t_ip) / (M · P)
///     L_dice = 5 · Σ_i (1 − (2 Σ_p σ(x_ip) t_ip + 1) / (Σ_p σ(x_ip) + Σ_p t_ip + 1)) / M
///
/// **Importance sampling** (detectron2 `get_uncertain_point_coords_with_randomness`, no
/// gradient): draw 3P uniform candidates per mask, keep the ⌊0.75 P⌋ whose sampled logit has the
/// smallest |x| (uncertainty −|x|), add P − ⌊0.75 P⌋ fresh uniform points.
///
/// Point sampling is `PointSample` (grid_sample semantics) on mask logits at their own
/// resolution and on the target masks at label resolution. Gradients:
///
///     ∂L_cls/∂logit = 2 · w_y (softmax − onehot_y) / Σ w
///     ∂L_mask/∂x = 5 · (σ(x) − t) / (M · P)
///     ∂L_dice/∂x_j = −5/M · (2 t_j D − (2 I + 1)) / D² · σ(x_j)(1 − σ(x_j)),  I = Σ σ t, D = Σ σ + Σ t + 1
///
/// and ∂x flows back to the mask logits through the adjoint of the point sampling.
public struct MaskTargets {
    /// The class of each target mask [G].
    public var classes: [Int]
    /// Binary masks [G, H, W] (1 where label == class).
    public var masks: Tensor

    public init(classes: [Int], masks: Tensor) {
        self.classes = classes
        self.masks = masks
    }

    /// The semantic-segmentation targets of one label map (row-major [H, W], 255 = ignore):
    /// one mask per class `< numClasses` present, in increasing class order.
    public init(labels: UnsafeBufferPointer<UInt8>, height: Int, width: Int, numClasses: Int) {
        var present = [Bool](repeating: false, count: numClasses)
        for l in labels where Int(l) < numClasses { present[Int(l)] = true }
        classes = (0..<numClasses).filter { present[$0] }
        masks = Tensor(zeros: [classes.count, height, width])
        var slot = [Int](repeating: -1, count: 256)
        for (g, c) in classes.enumerated() { slot[c] = g }
        let m = masks.data, hw = height * width
        for i in 0..<hw {
            let g = slot[Int(labels[i])]
            if g >= 0 { m[g * hw + i] = 1 }
        }
    }
}

/// The weights and sizes of the criterion (mmdet/mmseg Mask2Former defaults).
public struct Mask2FormerLossSettings {
    public var classWeight: Float = 2
    public var maskWeight: Float = 5
    public var diceWeight: Float = 5
    public var noObjectWeight: Float = 0.1
    public var points = 12_544
    public var oversampleRatio = 3
    public var importanceSampleRatio: Float = 0.75
    public init() {}
}

public enum Mask2FormerLoss {
    @inline(__always) static func softplus(_ z: Float) -> Float { Swift.max(z, 0) + log1pf(expf(-abs(z))) }
    @inline(__always) static func sigmoid(_ z: Float) -> Float { 1 / (1 + expf(-z)) }

    /// A zero-filled work tensor: borrowed from `scratch` when there is one (the head's, so
    /// that a step reuses the last step's memory), else new.
    static func work(_ scratch: ScratchArena?, _ key: String, _ shape: [Int]) -> Tensor {
        scratch?.zeros(key, shape) ?? Tensor(zeros: shape)
    }

    /// The matching cost [Q, G] (row-major) of one image. classLogits [Q, K+1],
    /// maskPoints x [Q, P_m], targetPoints t [G, P_m], classes [G]. Work buffers: `cost.*`.
    public static func matchingCost(classLogits: Tensor, maskPoints: Tensor, targetPoints: Tensor, classes: [Int],
                                    settings: Mask2FormerLossSettings = .init(), scratch: ScratchArena? = nil) -> [Float] {
        let Q = classLogits.shape[0], K1 = classLogits.shape[1], G = classes.count, P = maskPoints.shape[1]
        precondition(maskPoints.count == Q * P && targetPoints.count == G * P, "matchingCost: points \(maskPoints.shape), \(targetPoints.shape)")
        if G == 0 { return [] }
        // pos = softplus(−x), neg = softplus(x), s = σ(x)  [Q, P]
        let pos = work(scratch, "cost.pos", [Q, P]), neg = work(scratch, "cost.neg", [Q, P])
        let sig = work(scratch, "cost.sigmoid", [Q, P])
        let x = maskPoints.data, pp = pos.data, np = neg.data, sp = sig.data
        Parallel.forEach(Q * P, grain: 1 << 14) { r in
            for i in r {
                let z = x[i]
                np[i] = softplus(z); pp[i] = np[i] - z; sp[i] = sigmoid(z)
            }
        }
        // BCE cost: pos tᵀ + neg (1 − t)ᵀ = (pos − neg) tᵀ + rowsum(neg)
        let diff = work(scratch, "cost.diff", [Q, P])
        for i in 0..<(Q * P) { diff.data[i] = pp[i] - np[i] }
        let bce = work(scratch, "cost.bce", [Q, G]), inter = work(scratch, "cost.intersection", [Q, G])
        BLAS.gemm(transposeA: false, transposeB: true, m: Q, n: G, k: P, a: diff.data, lda: P,
                  b: targetPoints.data, ldb: P, c: bce.data, ldc: G)
        BLAS.gemm(transposeA: false, transposeB: true, m: Q, n: G, k: P, a: sp, lda: P,
                  b: targetPoints.data, ldb: P, c: inter.data, ldc: G)
        var negSum = [Double](repeating: 0, count: Q), sigSum = [Double](repeating: 0, count: Q)
        var tSum = [Double](repeating: 0, count: G)
        for q in 0..<Q {
            negSum[q] = Kernels.sum(np + q * P, count: P)
            sigSum[q] = Kernels.sum(sp + q * P, count: P)
        }
        for g in 0..<G { tSum[g] = Kernels.sum(targetPoints.data + g * P, count: P) }
        var cost = [Float](repeating: 0, count: Q * G)
        var prob = [Float](repeating: 0, count: K1)
        for q in 0..<Q {
            for k in 0..<K1 { prob[k] = classLogits.data[q * K1 + k] }
            prob.withUnsafeMutableBufferPointer { Kernels.softmaxRow($0.baseAddress!, K1) }
            for g in 0..<G {
                let bceCost = (Double(bce.data[q * G + g]) + negSum[q]) / Double(P)
                let dice = 1 - (2 * Double(inter.data[q * G + g]) + 1) / (sigSum[q] + tSum[g] + 1)
                cost[q * G + g] = Float(Double(settings.classWeight) * -Double(prob[classes[g]])
                                        + Double(settings.maskWeight) * bceCost + Double(settings.diceWeight) * dice)
            }
        }
        return cost
    }

    /// Uniform points [n, count, 2] in [0, 1)² (in `scratch`'s `loss.uniformPoints` when given).
    public static func uniformPoints(_ n: Int, _ count: Int, rng: inout RandomGenerator, scratch: ScratchArena? = nil) -> Tensor {
        let t = work(scratch, "loss.uniformPoints", [n, count, 2])
        rng.fillUniform(t, 0, 1)
        return t
    }

    /// Importance sampling given its random draws: candidates [N, C, 2] (C = oversample·P) and
    /// fresh [N, P − k, 2] points, k = ⌊ratio·P⌋: per mask, the k candidates of smallest
    /// |logit| (ties: the earlier one), then the fresh points → [N, P, 2] (in `scratch`'s
    /// `loss.points` when given).
    public static func uncertainPoints(maskLogits: Tensor, candidates: Tensor, fresh: Tensor, points P: Int,
                                       scratch: ScratchArena? = nil) -> Tensor {
        let N = maskLogits.shape[0], C = candidates.shape[1], k = P - fresh.shape[1]
        precondition(k >= 0 && k <= C && candidates.shape[0] == N && fresh.shape[0] == N, "uncertainPoints: shapes")
        let sampled = work(scratch, "loss.candidateLogits", [N, C])
        PointSample.forward(maps: maskLogits, points: candidates, into: sampled)
        let out = work(scratch, "loss.points", [N, P, 2])
        let cp = candidates.data, fp = fresh.data, op = out.data, sp = sampled.data
        Parallel.forEach(N) { r in
            var keys = [Float](repeating: 0, count: C)
            for i in r {
                let s = sp + i * C
                for j in 0..<C { keys[j] = abs(s[j]) }
                // The k smallest |x| (ties: the earlier candidate), in candidate order: the k-th
                // smallest key by selection, then every key below it and the first equal ones.
                let o = op + i * P * 2
                var n = 0
                if k > 0 {
                    var scratch = keys
                    let threshold = kthSmallest(&scratch, k - 1)
                    var below = 0
                    for j in 0..<C where keys[j] < threshold { below += 1 }
                    var equalLeft = k - below
                    for j in 0..<C {
                        let take = keys[j] < threshold || (keys[j] == threshold && equalLeft > 0)
                        if !take { continue }
                        if keys[j] == threshold { equalLeft -= 1 }
                        o[2 * n] = cp[(i * C + j) * 2]; o[2 * n + 1] = cp[(i * C + j) * 2 + 1]
                        n += 1
                    }
                }
                for j in 0..<(P - k) {
                    o[2 * (k + j)] = fp[(i * (P - k) + j) * 2]; o[2 * (k + j) + 1] = fp[(i * (P - k) + j) * 2 + 1]
                }
            }
        }
        return out
    }

    /// The element of rank `k` (0-based) of `a` (reordered in place): quickselect with a
    /// median-of-three pivot, O(n) on average.
    static func kthSmallest(_ a: inout [Float], _ k: Int) -> Float {
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            let x = a[lo], y = a[mid], z = a[hi]
            let pivot = Swift.max(Swift.min(x, y), Swift.min(Swift.max(x, y), z))
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
        }
        return a[k]
    }

    /// Importance-sampled points for `maskLogits` [N, h, w], drawing from `rng`.
    public static func importancePoints(maskLogits: Tensor, settings: Mask2FormerLossSettings,
                                        rng: inout RandomGenerator) -> Tensor {
        let N = maskLogits.shape[0], P = settings.points
        let k = Int(settings.importanceSampleRatio * Float(P))
        let candidates = uniformPoints(N, settings.oversampleRatio * P, rng: &rng)
        let fresh = uniformPoints(N, P - k, rng: &rng)
        return uncertainPoints(maskLogits: maskLogits, candidates: candidates, fresh: fresh, points: P)
    }

    /// Weighted classification cross-entropy over all rows: logits [N, K+1], targets [N]
    /// (K = no object). Returns L_cls (weight included) and accumulates ∂L_cls/∂logits.
    /// `weightSum` replaces Σ w (data-parallel training passes the global one).
    public static func classificationLoss(logits: Tensor, targets: [Int], dLogits: Tensor?,
                                          settings: Mask2FormerLossSettings = .init(), weightSum weightSum_: Double? = nil) -> Double {
        let N = targets.count, K1 = logits.shape[logits.rank - 1]
        precondition(logits.count == N * K1, "classificationLoss: logits \(logits.shape) for \(N) targets")
        var weightSum = 0.0, loss = 0.0
        let weight = { (y: Int) -> Float in y == K1 - 1 ? settings.noObjectWeight : 1 }
        for y in targets { weightSum += Double(weight(y)) }
        if let w = weightSum_ { weightSum = w }
        var p = [Float](repeating: 0, count: K1)
        for i in 0..<N {
            let row = logits.data + i * K1
            for k in 0..<K1 { p[k] = row[k] }
            p.withUnsafeMutableBufferPointer { Kernels.softmaxRow($0.baseAddress!, K1) }
            var m = -Float.infinity
            for k in 0..<K1 { m = Swift.max(m, row[k]) }
            var z = 0.0
            for k in 0..<K1 { z += exp(Double(row[k] - m)) }
            let ce = Double(m) + log(z) - Double(row[targets[i]])
            let w = Double(weight(targets[i]))
            loss += w * ce
            if let d = dLogits {
                let c = Float(Double(settings.classWeight) * w / weightSum)
                for k in 0..<K1 { d.data[i * K1 + k] += c * (p[k] - (k == targets[i] ? 1 : 0)) }
            }
        }
        return Double(settings.classWeight) * loss / weightSum
    }

    /// Mask BCE and dice on point samples: logits x [N, P], targets t [N, P], normaliser M.
    /// Returns (L_mask, L_dice) (weights included) and accumulates ∂(L_mask + L_dice)/∂x.
    public static func maskLosses(pointLogits: Tensor, pointTargets: Tensor, normalizer M: Float,
                                  dPointLogits: Tensor?, settings: Mask2FormerLossSettings = .init()) -> (mask: Double, dice: Double) {
        let N = pointLogits.shape[0], P = pointLogits.count / Swift.max(N, 1)
        precondition(pointTargets.count == N * P, "maskLosses: targets \(pointTargets.shape) for logits \(pointLogits.shape)")
        let x = pointLogits.data, t = pointTargets.data
        var bceSum = 0.0, diceSum = 0.0
        let bceScale = settings.maskWeight / (M * Float(P)), diceScale = settings.diceWeight / M
        for i in 0..<N {
            var inter = 0.0, sSum = 0.0, tSum = 0.0, b = 0.0
            for j in 0..<P {
                let z = x[i * P + j], tt = t[i * P + j]
                b += Double(softplus(z) - z * tt)
                let s = sigmoid(z)
                inter += Double(s * tt); sSum += Double(s); tSum += Double(tt)
            }
            bceSum += b
            let D = sSum + tSum + 1, I2 = 2 * inter + 1
            diceSum += 1 - I2 / D
            if let d = dPointLogits {
                let dp = d.data + i * P
                for j in 0..<P {
                    let z = x[i * P + j], tt = t[i * P + j], s = sigmoid(z)
                    let dDice = -(2 * Double(tt) * D - I2) / (D * D) * Double(s * (1 - s))
                    dp[j] += bceScale * (s - tt) + diceScale * Float(dDice)
                }
            }
        }
        return (Double(settings.maskWeight) * bceSum / (Double(M) * Double(P)), Double(settings.diceWeight) * diceSum / Double(M))
    }
}
