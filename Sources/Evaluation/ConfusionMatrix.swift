/// Confusion matrix over K classes and the IoU metrics derived from it.
///
///   C[g, p] += 1 for every pixel whose ground truth g ∈ 0..<K is not ignored (255) and whose
///             prediction is p; predictions outside 0..<K (255 included) go to an extra
///             column K ("wrong, no class"), so they count as false negatives of g and as
///             nobody's false positive.
///   TP_c = C[c, c],  FN_c = Σ_p C[c, p] − TP_c,  FP_c = Σ_g C[g, c] − TP_c
///   IoU_c = TP_c / (TP_c + FP_c + FN_c);  undefined (null) when the class is absent from both
///           prediction and ground truth (denominator 0), and left out of the mean
///   mIoU  = mean of the defined IoU_c;  pixels = Σ C (the evaluated, non-ignored gt pixels)
///
/// This equals cityscapesScripts' `evalPixelLevelSemanticLabeling` (which counts a
/// prediction of a non-evaluated id on a valid pixel as a false negative only, ignores gt
/// pixels of non-evaluated ids, and leaves `nan` classes out of the average) and mmseg's
/// `IoUMetric` (accumulated over the whole split, nan classes dropped by `nanmean`).
import Data
import Foundation
import ImageIO
import Core

public struct ConfusionMatrix: Equatable, Sendable {
    public let numClasses: Int
    /// Row-major [K, K+1] counts; column K holds predictions outside 0..<K.
    public var counts: [Int64]

    public init(numClasses: Int = Cityscapes.numClasses) {
        self.numClasses = numClasses
        counts = [Int64](repeating: 0, count: numClasses * (numClasses + 1))
    }

    /// Adds one (prediction, ground-truth train id) pair of equal size.
    public mutating func add(prediction: UnsafeBufferPointer<UInt8>, groundTruth: UnsafeBufferPointer<UInt8>) {
        precondition(prediction.count == groundTruth.count, "ConfusionMatrix.add: size mismatch")
        let k = numClasses, stride = k + 1
        counts.withUnsafeMutableBufferPointer { c in
            for i in 0..<groundTruth.count {
                let g = Int(groundTruth[i])
                if g >= k { continue }
                var p = Int(prediction[i])
                if p >= k { p = k }
                c[g * stride + p] += 1
            }
        }
    }

    public mutating func add(prediction: LabelMap, groundTruth: LabelMap) {
        prediction.labels.withUnsafeBufferPointer { p in
            groundTruth.labels.withUnsafeBufferPointer { g in add(prediction: p, groundTruth: g) }
        }
    }

    public mutating func add(_ other: ConfusionMatrix) {
        precondition(other.numClasses == numClasses)
        for i in 0..<counts.count { counts[i] += other.counts[i] }
    }

    public subscript(gt: Int, pred: Int) -> Int64 { counts[gt * (numClasses + 1) + pred] }

    /// Per-class IoU, `nil` where the class is absent from both prediction and ground truth.
    public var iou: [Double?] {
        let k = numClasses, stride = k + 1
        return (0..<k).map { c in
            let tp = counts[c * stride + c]
            var row: Int64 = 0, col: Int64 = 0
            for p in 0...k { row += counts[c * stride + p] }
            for g in 0..<k { col += counts[g * stride + c] }
            let denom = row + col - tp
            return denom == 0 ? nil : Double(tp) / Double(denom)
        }
    }

    /// The evaluated (non-ignored ground truth) pixels.
    public var pixels: Int64 { counts.reduce(0, +) }

    public func metrics(classNames: [String] = Cityscapes.classNames) -> SegmentationMetrics {
        SegmentationMetrics(classNames: classNames, iou: iou, pixels: pixels)
    }
}

/// Per-class IoU, their mean and the pixel count: the result of `score` and of evaluation.
public struct SegmentationMetrics: Equatable, Sendable {
    public var classNames: [String]
    public var iou: [Double?]
    public var pixels: Int64

    public init(classNames: [String], iou: [Double?], pixels: Int64) {
        precondition(classNames.count == iou.count)
        self.classNames = classNames
        self.iou = iou
        self.pixels = pixels
    }

    /// Mean over the defined classes; `nil` when none is defined.
    public var miou: Double? {
        let v = iou.compactMap { $0 }
        return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }

    /// `{"miou": m, "iou": {"road": x, ...}, "pixels": n}` (reference §Command line), full precision, `null`
    /// for undefined values, classes in train-id order.
    public var jsonObjectText: String { json.text }

    var json: JSONValue {
        .object([("miou", .number(miou)), ("iou", .object(zip(classNames, iou).map { ($0, JSONValue.number($1)) })),
                 ("pixels", .int(Int(pixels)))])
    }

    /// The per-class table (IoU in percent, two decimals), as mmseg prints it.
    public func table(title: String? = nil) -> String {
        let width = max(14, (classNames.map(\.count).max() ?? 0) + 2)
        var lines: [String] = []
        if let title { lines.append(title) }
        let rule = String(repeating: "-", count: width + 10)
        lines.append(rule)
        lines.append(pad("class", width) + "   IoU(%)")
        lines.append(rule)
        for (name, v) in zip(classNames, iou) {
            lines.append(pad(name, width) + (v.map { String(format: "%9.2f", $0 * 100) } ?? "      n/a"))
        }
        lines.append(rule)
        lines.append(pad("mIoU", width) + (miou.map { String(format: "%9.2f", $0 * 100) } ?? "      n/a"))
        lines.append(pad("pixels", width) + String(format: "%9lld", pixels))
        return lines.joined(separator: "\n")
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
