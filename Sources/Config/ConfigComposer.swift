/// Composing a config from files: `_base_` chains, `--set` overrides, resolution against a
/// schema. Nothing here knows which keys exist; the schema says.
///
///     resolved = defaults ◁ base_1 ◁ … ◁ base_k ◁ file ◁ --set a.b=v …
///
/// (`x ◁ y`: `y` merged over `x`; mappings merge key by key, lists and scalars are
/// replaced). `_base_: [files]` is resolved relative to the including file, recursively,
/// in list order. Every file and every `--set` is checked against the schema on its own,
/// so an unknown key or a bad value is one error naming the key path and the file (or
/// `--set`) it came from.
import Core
import Foundation

public enum ConfigComposer {
    /// Loads `path` and its `_base_` chain, merged; each file checked against `schema`.
    public static func loadComposed(path: String, schema: ConfigSchema, chain: [String] = []) throws -> ConfigValue {
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
                           schema: schema, chain: chain + [url.path])
    }

    /// Parses `text`, loads its `_base_` files and merges it over them. Each file is
    /// checked against the schema (unknown keys, types, choices) under its own name.
    public static func compose(text: String, source: String, directory: String, schema: ConfigSchema,
                               chain: [String] = []) throws -> ConfigValue {
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
            let baseTree = try loadComposed(path: basePath, schema: schema, chain: chain)
            merged = baseTree.merged(over: merged)
        }
        return own.merged(over: merged)
    }

    // MARK: - Resolution

    /// Resolves a composed tree fully (defaults filled), then applies `overrides`
    /// (`key.path=value`, in order), checking after each. `prepare` fills keys whose
    /// default depends on the run (it sees the tree before each resolution).
    public static func resolve(_ tree: ConfigValue, schema: ConfigSchema, origin: String, overrides: [String],
                               given: Set<String>, prepare: (ConfigValue) throws -> ConfigValue = { $0 })
        throws -> ResolvedConfig {
        var given = given
        guard var resolved = try schema.resolve(try prepare(tree), path: "", origin: origin, full: true) else {
            preconditionFailure("full resolution returns a value")
        }
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
                changed = try prepare(try resolved.setting(value, at: components[...], fullPath: key))
            } catch let error as CausalTuneError {
                throw CausalTuneError("\(error.message) in \(label)")
            }
            guard let r = try schema.resolve(changed, path: "", origin: label, full: true) else {
                preconditionFailure("full resolution returns a value")
            }
            resolved = r
            given.formUnion(ResolvedConfig.prefixes(of: components))
        }
        return ResolvedConfig(tree: resolved, given: given)
    }
}

/// A fully resolved config tree (every key present) and which keys the files and `--set`
/// gave (`given`: dotted paths of every mapping key written, and of their parents), so a
/// run can tell "left at its default" from "set to the default's value".
public struct ResolvedConfig: Sendable {
    public let tree: ConfigValue
    public let given: Set<String>

    public init(tree: ConfigValue, given: Set<String>) {
        self.tree = tree
        self.given = given
    }

    /// The dotted paths of the mapping keys in `tree` (list items are not descended into:
    /// a list is given as a whole).
    public static func keyPaths(of tree: ConfigValue, prefix: String = "") -> Set<String> {
        guard case .map(let map) = tree else { return [] }
        var paths = Set<String>()
        for (key, value) in map.entries {
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            paths.insert(path)
            paths.formUnion(keyPaths(of: value, prefix: path))
        }
        return paths
    }

    /// `a`, `a.b`, `a.b.c` for the components of `a.b.c`.
    static func prefixes(of components: [String]) -> [String] {
        (1...components.count).map { components[..<$0].joined(separator: ".") }
    }
}
