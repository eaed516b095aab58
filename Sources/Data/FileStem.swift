import Foundation

/// A file's *stem*: its name without the extension and without the first matching
/// Cityscapes-family suffix, so `aachen_000000_000019_leftImg8bit.png` and
/// `aachen_000000_000019_gtFine_labelIds.png` share the stem `aachen_000000_000019`.
/// Datasets pair images with labels by it, `predict` names its outputs by it and `score`
/// matches predictions with ground truth by it.
public enum FileStem {
    /// Suffixes stripped from stems, longest first.
    public static let suffixes: [String] = [
        "_gtFine_labelTrainIds", "_gtCoarse_labelTrainIds", "_gtFine_labelIds", "_gtCoarse_labelIds",
        "_gt_labelTrainIds", "_gt_labelIds", "_labelTrainIds", "_leftImg8bit", "_labelIds",
        "_rgb_anon", "_trainIds", "_train_id", "_prediction", "_pred",
    ]

    /// The stem used to match a file with its counterpart.
    public static func of(_ path: String) -> String {
        var name = (path as NSString).lastPathComponent
        if let dot = name.lastIndex(of: ".") { name = String(name[..<dot]) }
        for s in suffixes where name.hasSuffix(s) && name.count > s.count {
            return String(name.dropLast(s.count))
        }
        return name
    }
}
