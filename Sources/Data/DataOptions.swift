import Config
import Core

/// `data`: the training set, the validation sets, the crop and the augmentation.
public struct DataOptions: Equatable, Sendable, Decodable {
    public enum Augment: String, CaseIterable, Sendable, Decodable { case full, none }

    public var train: DatasetOptions
    public var val: [DatasetOptions]
    public var cropSize: Int
    public var augment: Augment

    /// The largest `crop_size` (pixels per side).
    public static let maxCropSize = 8192

    /// The keys of one dataset entry (`data.train`, each item of `data.val`).
    static let datasetItem: KeyValuePairs<String, ConfigSchema> = [
        "dataset": .required(.choice(DatasetKind.cityscapes)),
        "root": .string(""),
        "split": .string("val"),
        "name": .string(nil),        // null: the dataset name (plus condition/domain)
        "condition": .string(nil),   // acdc only: fog | night | rain | snow
        "domain": .string(nil),      // synthetic only: source | fog | night | rain | snow
        "scale": .string(nil),       // val only: test-time resize WxH or none; null: the dataset's own
    ]

    public static let schema: ConfigSchema = .checked(.map([
        "train": .map([
            "dataset": .choice(DatasetKind.gta5),
            "root": .string("data/gta5"),
            "split": .string("train"),
            "name": .string(nil),
            "condition": .string(nil),
            "domain": .string(nil),
        ]),
        "val": .mapList(item: datasetItem, default: [.map(ConfigMap([
            ("dataset", .string("cityscapes")), ("root", .string("data/cityscapes")), ("split", .string("val")),
            ("name", .string("citys")), ("condition", .null), ("domain", .null), ("scale", .null),
        ]))]),
        "crop_size": .int(512, min: 1, max: maxCropSize),
        "augment": .choice(Augment.full),
    ]), check: checkDatasets)

    /// `condition` only for acdc, `domain` only for synthetic, each from its list; `scale`
    /// a test-time size.
    @Sendable static func checkDatasets(_ data: ConfigValue, path: String, origin: String) throws {
        var datasets: [(String, ConfigValue)] = []
        if let train = data.value(at: "train") { datasets.append(("\(path).train", train)) }
        if case .list(let items)? = data.value(at: "val") {
            for (i, item) in items.enumerated() { datasets.append(("\(path).val[\(i)]", item)) }
        }
        let domains = SyntheticDomain.allCases.map(\.rawValue)
        for (path, item) in datasets {
            let dataset = item.value(at: "dataset")?.flow ?? ""
            if let condition = item.value(at: "condition"), condition != .null {
                guard dataset == DatasetKind.acdc.rawValue else {
                    throw CausalTuneError("config key '\(path).condition' applies only to dataset acdc (this is \(dataset)) in \(origin)")
                }
                guard DatasetKind.acdcConditions.contains(condition.flow) else {
                    throw CausalTuneError("config key '\(path).condition' must be one of \(DatasetKind.acdcConditions.joined(separator: "|")), got '\(condition.flow)' in \(origin)")
                }
            }
            if let scale = item.value(at: "scale"), scale != .null {
                _ = try TestScale.parse(scale.flow, what: "config key '\(path).scale' in \(origin)")
            }
            if let domain = item.value(at: "domain"), domain != .null {
                guard dataset == DatasetKind.synthetic.rawValue else {
                    throw CausalTuneError("config key '\(path).domain' applies only to dataset synthetic (this is \(dataset)) in \(origin)")
                }
                guard domains.contains(domain.flow) else {
                    throw CausalTuneError("config key '\(path).domain' must be one of \(domains.joined(separator: "|")), got '\(domain.flow)' in \(origin)")
                }
            }
        }
    }
}

/// One dataset entry: which dataset, where, which split, and how it is named and scaled.
public struct DatasetOptions: Equatable, Sendable, Decodable {
    public var dataset: DatasetKind
    public var root: String
    public var split: String
    /// The name given in the config (nil when not given); see `displayName`.
    public var name: String?
    public var condition: String?
    public var domain: String?
    /// Test-time resize of a val entry (`scale: 2048x1024` or `none`); nil: the dataset's
    /// own evaluation scale. Always nil for `data.train`.
    public var scale: TestScale?

    /// The name used in tables and metrics: `name`, else the dataset name with its
    /// condition or domain (`acdc_night`, `synthetic_fog`).
    public var displayName: String {
        if let name { return name }
        if let suffix = condition ?? domain { return "\(dataset.rawValue)_\(suffix)" }
        return dataset.rawValue
    }
}
