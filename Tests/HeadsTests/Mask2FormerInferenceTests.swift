import Foundation
import XCTest
import Numerics
import Layers
import Heads

/// Evaluation's path through the head — `forward(…, inference: true)` (no class logits
/// before the last prediction, the last prediction alone kept) and the tiled
/// `semanticLogits` — against the training forward and the formula the semantic logits had
/// before (upsample all Q masks, σ with `expf`, one product): the same last prediction, the
/// same labels, logits equal up to rounding, the same bits for any thread count.
final class Mask2FormerInferenceTests: XCTestCase {
    private func makeHead(_ rng: inout RandomGenerator) -> Mask2FormerHead {
        let head = Mask2FormerHead(inputChannels: 8, backboneChannels: 8, numClasses: 5, channels: 32, queries: 12,
                                   decoderLayers: 4, heads: 4, encoderLayers: 2, points: 2,
                                   encoderFeedforward: 48, decoderFeedforward: 64, groups: 8)
        head.reset(rng: &rng)
        // Decisive class scores and larger masks than the default initialisation gives.
        rng.fillNormal(head.classEmbed.weight.value, std: 3)
        rng.fillNormal(head.maskEmbed[2].weight.value, std: 1)
        return head
    }

    /// The semantic logits as the head computed them before the tiled version.
    private func referenceSemantic(_ pred: Mask2FormerHead.Prediction, size: (h: Int, w: Int)) -> Tensor {
        let (B, Q, K1) = (pred.classLogits.shape[0], pred.classLogits.shape[1], pred.classLogits.shape[2])
        let K = K1 - 1, hw = size.h * size.w
        let up = Tensor(zeros: [B, Q, size.h, size.w])
        Resample.bilinear(pred.maskLogits, into: up)
        for i in 0..<up.count { up.data[i] = 1 / (1 + expf(-up.data[i])) }
        let probs = pred.classLogits.clone()
        Kernels.softmaxRows(probs.data, rows: B * Q, cols: K1)
        let out = Tensor(zeros: [B, K, size.h, size.w])
        for b in 0..<B {
            BLAS.gemm(transposeA: true, transposeB: false, m: K, n: hw, k: Q, a: probs.data + b * Q * K1, lda: K1,
                      b: up.data + b * Q * hw, ldb: hw, c: out.data + b * K * hw, ldc: hw)
        }
        return out
    }

    private func labels(_ logits: Tensor) -> [Int] {
        let (B, K, n) = (logits.shape[0], logits.shape[1], logits.shape[2] * logits.shape[3])
        var out: [Int] = []
        for b in 0..<B {
            for p in 0..<n {
                var best = -Float.infinity, arg = 0
                for k in 0..<K where logits.data[(b * K + k) * n + p] > best { best = logits.data[(b * K + k) * n + p]; arg = k }
                out.append(arg)
            }
        }
        return out
    }

    /// The argmax labels of `logits` equal those of `reference` at every pixel whose two labels
    /// are not tied within `tolerance` in the reference: where another CPU's BLAS kernels round
    /// the products otherwise (by at most `tolerance`), only such a near-tie may change its label.
    private func assertSameLabelsExceptTies(_ logits: Tensor, _ reference: Tensor, tolerance: Float, _ name: String) {
        let got = labels(logits), want = labels(reference)
        let (K, n) = (reference.shape[1], reference.shape[2] * reference.shape[3])
        for i in 0..<want.count where got[i] != want[i] {
            let b = i / n, p = i % n
            let gap = reference.data[(b * K + want[i]) * n + p] - reference.data[(b * K + got[i]) * n + p]
            XCTAssertLessThanOrEqual(gap, 2 * tolerance, "\(name): pixel \(i) label \(got[i]), not \(want[i]), beyond a tie")
        }
    }

    /// A head and random inputs: B images with feature maps of g×g (stride 4) down to the
    /// stride-32 size, and the tokens of 3 layers.
    private func makeInputs(seed: UInt64, batch B: Int, grid g: Int) -> (Mask2FormerHead, [Tensor], Tensor) {
        var rng = RandomGenerator(seed: seed)
        let head = makeHead(&rng)
        let features = [g, g / 2, g / 4, (g + 7) / 8].map { randomTensor([B, 8, $0, $0], &rng) }
        return (head, features, randomTensor([3, 12, 8], &rng))
    }

    func testInferencePathMatchesTheTrainingForwardAndTheOldFormula() {
        // Mask features 20×20 (stride 4) → windows of 77×80: the tiles of `semanticLogits`
        // (2048 pixels = 25 rows) end in a partial one; levels 3×3, 5×5, 10×10.
        let B = 3, size = (h: 77, w: 80)
        let (head, features, tokens) = makeInputs(seed: 83, batch: B, grid: 20)

        // Every query's class scores share a large common part (one class would win
        // everywhere): the bias takes the mean over the queries off, so each query's class
        // comes from its own features and the labels vary over the image.
        let first = head.forward(features: features, tokens: tokens).last!.classLogits
        let rows = first.count / 6, bias = head.classEmbed.bias!.value
        for r in 0..<rows { for k in 0..<6 { bias.data[k] -= first.data[r * 6 + k] / Float(rows) } }
        let full = head.forward(features: features, tokens: tokens)
        XCTAssertEqual(full.count, 5)
        let lastClass = full.last!.classLogits.clone(), lastMask = full.last!.maskLogits.clone()
        let reference = referenceSemantic(full.last!, size: size)
        let sameForward = head.semanticLogits(size: size)

        let inferred = head.forward(features: features, tokens: tokens, inference: true)
        XCTAssertEqual(inferred.count, 1)
        XCTAssertEqual(inferred[0].classLogits.array, lastClass.array)
        XCTAssertEqual(inferred[0].maskLogits.array, lastMask.array)
        let tiled = head.semanticLogits(size: size)
        XCTAssertEqual(tiled.shape, [B, 5, 77, 80])

        // The bound is relative to the largest logit (≤ Q): the tiles' products may round
        // otherwise than the one product of before (here they do not: Δ = 0).
        for (name, t) in [("tiled σ·sum after the training forward", sameForward), ("inference path", tiled)] {
            var maxDiff: Float = 0, maxAbs: Float = 0
            for i in 0..<reference.count {
                maxDiff = max(maxDiff, abs(t.data[i] - reference.data[i]))
                maxAbs = max(maxAbs, abs(reference.data[i]))
            }
            print("Mask2Former inference, \(name): max |Δlogit| \(maxDiff) of max |logit| \(maxAbs), bit-identical: \(t.array == reference.array)")
            XCTAssertGreaterThan(maxAbs, 0.1)
            XCTAssertLessThanOrEqual(maxDiff, 1e-5 * maxAbs, name)
            assertSameLabelsExceptTies(t, reference, tolerance: 1e-5 * maxAbs, name)
        }
        let classes = Set(labels(reference))
        print("Mask2Former inference: classes predicted \(classes.sorted())")
        XCTAssertGreaterThan(classes.count, 2, "a head that predicts one class everywhere tests little")
    }

    func testInferenceIsTheSameForAnyThreadCountAndAllocatesOnlyTheOutput() {
        let size = (h: 61, w: 64)
        let (head, features, tokens) = makeInputs(seed: 89, batch: 2, grid: 16)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        var results: [[Float]] = [], forwardCounts: [Int] = [], semanticCounts: [Int] = []
        for threads in [1, 2, 3, 1] {
            Parallel.threads = threads
            var before = TensorStorage.allocationCount
            head.forward(features: features, tokens: tokens, inference: true)
            forwardCounts.append(TensorStorage.allocationCount - before)
            before = TensorStorage.allocationCount
            results.append(head.semanticLogits(size: size).array)
            semanticCounts.append(TensorStorage.allocationCount - before)
        }
        for r in results.dropFirst() { XCTAssertEqual(r, results[0]) }
        print("Mask2Former inference tensor allocations: forward \(forwardCounts), semanticLogits \(semanticCounts)")
        XCTAssertEqual(Array(forwardCounts.dropFirst()), [0, 0, 0])
        XCTAssertEqual(semanticCounts.last, 1, "the output alone")
    }
}
