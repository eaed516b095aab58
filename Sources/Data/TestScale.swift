import Core

/// The test-time resize of a validation entry (`data.val[i].scale`) or of `predict --scale`:
///
///     WxH      keep-ratio resize into W×H (the largest size with the image's aspect ratio
///              that fits, as mmseg's `Resize(scale=(W, H), keep_ratio=True)`)
///     none     no resize: the decoded image goes to the sliding window as it is
///     (absent) the dataset's own evaluation scale (Cityscapes 1024x512, …)
public enum TestScale: Equatable, Sendable, Decodable {
    case size(width: Int, height: Int)
    case original

    /// Parses `WxH` (e.g. `2048x1024`) or `none`; `what` names the key or flag in the error.
    public static func parse(_ text: String, what: String) throws -> TestScale {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "none" || t == "original" { return .original }
        let parts = t.split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0, w <= 65536, h <= 65536 else {
            throw CausalTuneError("\(what): '\(text)' is not WxH (e.g. 2048x1024) or none")
        }
        return .size(width: w, height: h)
    }

    /// The evaluator's form: nil keeps the decoded size.
    public var evaluatorScale: (width: Int, height: Int)? {
        switch self {
        case .size(let w, let h): return (w, h)
        case .original: return nil
        }
    }
}

extension TestScale {
    /// From the config's `scale` string (already checked by `DataOptions.schema`).
    public init(from decoder: any Decoder) throws {
        self = try TestScale.parse(try decoder.singleValueContainer().decode(String.self), what: "scale")
    }
}
