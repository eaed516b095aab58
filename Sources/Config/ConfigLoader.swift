/// Loading configs: `_base_` composition, `--set` overrides, validation, YAML output.
import Core
import Foundation

extension ExperimentConfig {
    /// Loads `path`: its `_base_` files first (relative to the including file, recursive),
    /// this file over them, then every `key.path=value` of `overrides` in order.
    /// `output.work_dir` defaults to `runs/<file stem>`.
    public static func load(path: String, overrides: [String] = []) throws -> ExperimentConfig {
        let tree = try loadComposed(path: path, chain: [])
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try resolve(tree, origin: path, defaultWorkDir: "runs/\(stem)", overrides: overrides)
    }

    /// Parses config text (e.g. the resolved config saved in a checkpoint). `_base_` is
    /// resolved relative to `baseDirectory` (the current directory when nil).
    public static func parse(yaml text: String, source: String = "<config text>", baseDirectory: String? = nil,
                              overrides: [String] = []) throws -> ExperimentConfig {
        let directory = baseDirectory ?? FileManager.default.currentDirectoryPath
        let tree = try compose(text: text, source: source, directory: directory, chain: [])
        return try resolve(tree, origin: source, defaultWorkDir: "runs/default", overrides: overrides)
    }

    /// This config with `overrides` (`key.path=value`) applied and checked.
    public func overriding(_ overrides: [String]) throws -> ExperimentConfig {
        try ExperimentConfig.resolve(resolved, origin: "the resolved config", defaultWorkDir: output.workDir,
                                     overrides: overrides)
    }

    /// The resolved config as YAML: every key, in schema order. Saved with every run and
    /// in checkpoints; `parse(yaml:)` of it gives an equal config.
    public var yaml: String { resolved.yaml }

    /// The resolved value at a dotted key path (`train.lr`, `data.val[0].root`).
    public func value(at path: String) -> ConfigValue? { resolved.value(at: path) }

    // MARK: - Composition

    static func loadComposed(path: String, chain: [String]) throws -> ConfigValue {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        if chain.contains(url.path) {
            throw CausalTuneError("\(path): _base_ cycle: \((chain + [url.path]).joined(separator: " -> "))")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            let via = chain.last.map { " (a _base_ of \($0))" } ?? ""
            throw CausalTuneError("\(path): no such config file\(via)")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CausalTuneError("\(path): cannot read config file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CausalTuneError("\(path): config file is not UTF-8 text")
        }
        return try compose(text: text, source: path, directory: url.deletingLastPathComponent().path,
                           chain: chain + [url.path])
    }

    /// Parses `text`, loads its `_base_` files and merges it over them. Each file is
    /// checked against the schema (unknown keys, types, choices) under its own name.
    static func compose(text: String, source: String, directory: String, chain: [String]) throws -> ConfigValue {
        let parsed = try ConfigValue.parse(yaml: text, source: source)
        guard case .map(var map) = parsed else {
            throw CausalTuneError("\(source): a config file must be a YAML mapping (key: value lines)")
        }
        var bases: [String] = []
        switch map["_base_"] {
        case nil, .null?: break
        case .string(let s)?: bases = [s]
        case .list(let items)?:
            for item in items {
                guard case .string(let s) = item else {
                    throw CausalTuneError("\(source): _base_ must list file names, got '\(item.flow)'")
                }
                bases.append(s)
            }
        case let other?:
            throw CausalTuneError("\(source): _base_ must be a file name or a list of them, got '\(other.flow)'")
        }
        map["_base_"] = nil
        let own = ConfigValue.map(map)
        _ = try schema.resolve(own, path: "", origin: source, full: false)

        var merged = ConfigValue.map(ConfigMap())
        for base in bases {
            let basePath = base.hasPrefix("/") ? base : URL(fileURLWithPath: directory).appendingPathComponent(base).path
            let baseTree = try loadComposed(path: basePath, chain: chain)
            merged = baseTree.merged(over: merged)
        }
        return own.merged(over: merged)
    }

    // MARK: - Resolution

    static func resolve(_ tree: ConfigValue, origin: String, defaultWorkDir: String,
                        overrides: [String]) throws -> ExperimentConfig {
        func withWorkDir(_ tree: ConfigValue) throws -> ConfigValue {
            guard case .map = tree, tree.value(at: "output.work_dir") == nil || tree.value(at: "output.work_dir") == .null else {
                return tree
            }
            return try tree.setting(.string(defaultWorkDir), at: ["output", "work_dir"], fullPath: "output.work_dir")
        }
        guard var resolved = try schema.resolve(try withWorkDir(tree), path: "", origin: origin, full: true) else {
            preconditionFailure("full resolution returns a value")
        }
        try checkRelations(resolved, origin: origin)
        for override in overrides {
            let label = "--set \(override)"
            guard let equals = override.firstIndex(of: "=") else {
                throw CausalTuneError("\(label): expected key.path=value")
            }
            let key = String(override[..<equals]).trimmingCharacters(in: .whitespaces)
            let components = ConfigValue.components(key)
            guard !components.isEmpty else { throw CausalTuneError("\(label): expected key.path=value") }
            let text = String(override[override.index(after: equals)...])
            // `--set train=` would reset a whole section to its defaults (a 40 000-iteration
            // run); an empty value is a typo, `null` says it on purpose.
            guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw CausalTuneError("\(label): empty value for '\(key)' (write \(key)=null to reset it to its default)")
            }
            let value = try ConfigValue.parse(overrideValue: text, source: label)
            let changed: ConfigValue
            do {
                changed = try withWorkDir(try resolved.setting(value, at: components[...], fullPath: key))
            } catch let error as CausalTuneError {
                throw CausalTuneError("\(error.message) in \(label)")
            }
            guard let r = try schema.resolve(changed, path: "", origin: label, full: true) else {
                preconditionFailure("full resolution returns a value")
            }
            resolved = r
            try checkRelations(resolved, origin: label)
        }
        return ExperimentConfig(resolved: resolved)
    }

    /// Checks between keys: `condition` only for acdc, `domain` only for synthetic, and
    /// the filter cut-offs in order.
    static func checkRelations(_ resolved: ConfigValue, origin: String) throws {
        var datasets: [(String, ConfigValue)] = []
        if let train = resolved.value(at: "data.train") { datasets.append(("data.train", train)) }
        if case .list(let items)? = resolved.value(at: "data.val") {
            for (i, item) in items.enumerated() { datasets.append(("data.val[\(i)]", item)) }
        }
        for (path, item) in datasets {
            let dataset = item.value(at: "dataset")?.flow ?? ""
            if let condition = item.value(at: "condition"), condition != .null {
                guard dataset == DatasetName.acdc.rawValue else {
                    throw CausalTuneError("config key '\(path).condition' applies only to dataset acdc (this is \(dataset)) in \(origin)")
                }
                guard acdcConditions.contains(condition.flow) else {
                    throw CausalTuneError("config key '\(path).condition' must be one of \(acdcConditions.joined(separator: "|")), got '\(condition.flow)' in \(origin)")
                }
            }
            if let scale = item.value(at: "scale"), scale != .null {
                _ = try TestScale.parse(scale.flow, what: "config key '\(path).scale' in \(origin)")
            }
            if let domain = item.value(at: "domain"), domain != .null {
                guard dataset == DatasetName.synthetic.rawValue else {
                    throw CausalTuneError("config key '\(path).domain' applies only to dataset synthetic (this is \(dataset)) in \(origin)")
                }
                guard syntheticDomains.contains(domain.flow) else {
                    throw CausalTuneError("config key '\(path).domain' must be one of \(syntheticDomains.joined(separator: "|")), got '\(domain.flow)' in \(origin)")
                }
            }
        }
        if case .float(let low)? = resolved.value(at: "model.peft.filter.low"),
           case .float(let high)? = resolved.value(at: "model.peft.filter.high"), low >= high {
            throw CausalTuneError("config keys 'model.peft.filter.low' (\(low)) and 'model.peft.filter.high' (\(high)): low must be below high in \(origin)")
        }
    }
}
