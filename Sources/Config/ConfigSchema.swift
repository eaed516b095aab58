/// The configuration schema: every key with its type, default and allowed values.
///
/// A schema is a tree of `ConfigSchema` values written as Swift literals: each module's
/// options type declares its section's (`BackboneOptions.schema`, …) and the experiment
/// config composes them. Adding a key is one line in its section's schema plus the
/// property of the same name (snake case) in its options type. Resolution checks a value
/// tree against the schema:
///
/// * an unknown key, a value of the wrong type, a value outside a choice or below a
///   minimum is ONE error naming the full key path (`train.lr`, `data.val[1].dataset`) and
///   where it came from (a file, or `--set …`);
/// * `partial` resolution (one file of a `_base_` chain) checks only the keys present;
///   `full` resolution fills every absent key with its default, in schema order, and
///   reports a missing required key.
import Core
import Foundation

public indirect enum ConfigSchema: Sendable {
    /// An integer in `min…max`; `nil` default means null is the default and allowed.
    case int(Int?, min: Int? = nil, max: Int? = nil)
    /// A number (integers accepted) above `min` (or at it unless `exclusiveMin`) and below
    /// `max` (or at it unless `exclusiveMax`); `nil` default as for `int`.
    case float(Double?, min: Double? = nil, exclusiveMin: Bool = false, max: Double? = nil, exclusiveMax: Bool = false)
    case bool(Bool)
    /// A string; `nil` default as for `int`.
    case string(String?)
    /// One of `allowed`, default `default`.
    case choice([String], default: String)
    /// A list of integers (`nil`: null default), each in `min…max`.
    case ints([Int]?, min: Int? = nil, max: Int? = nil)
    /// A list of numbers with an optional fixed length, each in `min..<max` (`exclusiveMax`)
    /// or `min…max`.
    case floats([Double], count: Int? = nil, min: Double? = nil, max: Double? = nil, exclusiveMax: Bool = false)
    /// A list of strings.
    case strings([String])
    /// A key that must be given (no default).
    case required(ConfigSchema)
    /// A mapping with these keys, in this order.
    case map(KeyValuePairs<String, ConfigSchema>)
    /// A list of mappings with the `item` keys; each item is resolved fully.
    case mapList(item: KeyValuePairs<String, ConfigSchema>, default: [ConfigValue])
    /// `inner` plus a rule between its keys, checked on the fully resolved value (after
    /// each `--set` too): `check(value, path, origin)` throws the error naming the keys.
    case checked(ConfigSchema, check: @Sendable (ConfigValue, _ path: String, _ origin: String) throws -> Void)

    /// A `choice` from a `String`-backed enum.
    public static func choice<E: RawRepresentable & CaseIterable>(_ value: E) -> ConfigSchema where E.RawValue == String {
        .choice(E.allCases.map(\.rawValue), default: value.rawValue)
    }

    /// The default value (`nil` when required).
    var defaultValue: ConfigValue? {
        switch self {
        case .int(let d, _, _): return d.map { .int($0) } ?? .null
        case .float(let d, _, _, _, _): return d.map { .float($0) } ?? .null
        case .bool(let b): return .bool(b)
        case .string(let s): return s.map { .string($0) } ?? .null
        case .choice(_, let d): return .string(d)
        case .ints(let d, _, _): return d.map { .list($0.map { .int($0) }) } ?? .null
        case .floats(let d, _, _, _, _): return .list(d.map { .float($0) })
        case .strings(let d): return .list(d.map { .string($0) })
        case .required: return nil
        case .map: return nil
        case .mapList(_, let d): return .list(d)
        case .checked(let inner, _): return inner.defaultValue
        }
    }

    // MARK: - Resolution

    /// Checks `value` (nil: absent) at `path` against this schema. `origin` names where the
    /// value came from for messages (`in configs/x.yaml`). Returns the resolved value
    /// (absent keys filled with defaults when `full`), or nil for an absent key in
    /// partial mode.
    func resolve(_ value: ConfigValue?, path: String, origin: String, full: Bool) throws -> ConfigValue? {
        func fail(_ what: String) -> CausalTuneError {
            CausalTuneError("config key '\(path)' \(what) in \(origin)")
        }
        func describe(_ v: ConfigValue) -> String {
            switch v {
            case .map: return "a mapping"
            case .list: return "a list"
            default: return "'\(v.flow)'"
            }
        }
        switch self {
        case .map(let fields):
            var input = ConfigMap()
            switch value {
            case nil, .null?: if !full { return value == nil ? nil : .map(ConfigMap()) }
            case .map(let m)?: input = m
            case let other?: throw fail("must be a mapping, got \(describe(other))")
            }
            let known = Set(fields.map(\.key))
            if let unknown = input.keys.first(where: { !known.contains($0) }) {
                let key = path.isEmpty ? unknown : "\(path).\(unknown)"
                let choices = fields.map(\.key).joined(separator: ", ")
                throw CausalTuneError("unknown config key '\(key)' in \(origin) (known here: \(choices))")
            }
            var out = ConfigMap()
            for (key, schema) in fields {
                let child = path.isEmpty ? key : "\(path).\(key)"
                if let v = try schema.resolve(input[key], path: child, origin: origin, full: full) { out[key] = v }
            }
            return .map(out)

        case .checked(let inner, let check):
            let resolved = try inner.resolve(value, path: path, origin: origin, full: full)
            if full, let resolved { try check(resolved, path, origin) }
            return resolved

        case .required(let inner):
            guard let value, value != .null else {
                if full { throw CausalTuneError("missing required config key '\(path)' in \(origin)") }
                if value == .null { throw fail("is required and cannot be null") }
                return nil
            }
            return try inner.resolve(value, path: path, origin: origin, full: full)

        case .mapList(let item, _):
            guard let value else { return full ? defaultValue : nil }
            guard case .list(let items) = value else { throw fail("must be a list of mappings, got \(describe(value))") }
            let itemSchema = ConfigSchema.map(item)
            return .list(try items.enumerated().map { i, v in
                guard case .map = v else {
                    throw CausalTuneError("config key '\(path)[\(i)]' must be a mapping, got \(describe(v)) in \(origin)")
                }
                return try itemSchema.resolve(v, path: "\(path)[\(i)]", origin: origin, full: true)!
            })

        default:
            guard let value else { return full ? defaultValue : nil }
            return try resolveScalar(value, fail: fail, describe: describe)
        }
    }

    private func resolveScalar(_ value: ConfigValue, fail: (String) -> CausalTuneError,
                               describe: (ConfigValue) -> String) throws -> ConfigValue {
        let nullable = defaultValue == .null
        if value == .null {
            if nullable { return .null }
            throw fail("cannot be null")
        }
        switch self {
        case .int(_, let min, let max):
            guard case .int(let i) = value else { throw fail("must be an integer, got \(describe(value))") }
            if let min, i < min { throw fail("must be at least \(min), got \(i)") }
            if let max, i > max { throw fail("must be at most \(max), got \(i)") }
            return value
        case .float(_, let min, let exclusive, let max, let exclusiveMax):
            let d: Double
            switch value {
            case .int(let i): d = Double(i)
            case .float(let f): d = f
            default: throw fail("must be a number, got \(describe(value))")
            }
            if !d.isFinite { throw fail("must be finite, got \(describe(value))") }
            if let min, exclusive ? d <= min : d < min {
                throw fail("must be \(exclusive ? "greater than" : "at least") \(ConfigValue.formatFloat(min)), got \(ConfigValue.formatFloat(d))")
            }
            if let max, exclusiveMax ? d >= max : d > max {
                throw fail("must be \(exclusiveMax ? "below" : "at most") \(ConfigValue.formatFloat(max)), got \(ConfigValue.formatFloat(d))")
            }
            return .float(d)
        case .bool:
            guard case .bool = value else { throw fail("must be true or false, got \(describe(value))") }
            return value
        case .string:
            switch value {
            case .string: return value
            case .int, .float, .bool: return .string(value.flow)
            default: throw fail("must be a string, got \(describe(value))")
            }
        case .choice(let allowed, _):
            let text: String
            switch value {
            case .string(let s): text = s
            case .int, .float, .bool: text = value.flow
            default: throw fail("must be one of \(allowed.joined(separator: "|")), got \(describe(value))")
            }
            guard allowed.contains(text) else {
                throw fail("must be one of \(allowed.joined(separator: "|")), got '\(text)'")
            }
            return .string(text)
        case .ints(_, let min, let max):
            guard case .list(let items) = value else { throw fail("must be a list of integers, got \(describe(value))") }
            for item in items {
                guard case .int(let i) = item else { throw fail("must be a list of integers, got \(describe(item)) in it") }
                if let min, i < min { throw fail("entries must be at least \(min), got \(i)") }
                if let max, i > max { throw fail("entries must be at most \(max), got \(i)") }
            }
            return value
        case .floats(_, let count, let min, let max, let exclusiveMax):
            guard case .list(let items) = value else { throw fail("must be a list of numbers, got \(describe(value))") }
            if let count, items.count != count { throw fail("must have \(count) entries, got \(items.count)") }
            return .list(try items.map { item in
                let d: Double
                switch item {
                case .int(let i): d = Double(i)
                case .float(let f): d = f
                default: throw fail("must be a list of numbers, got \(describe(item)) in it")
                }
                if !d.isFinite { throw fail("entries must be finite, got \(ConfigValue.formatFloat(d))") }
                if let min, d < min { throw fail("entries must be at least \(ConfigValue.formatFloat(min)), got \(ConfigValue.formatFloat(d))") }
                if let max, exclusiveMax ? d >= max : d > max {
                    throw fail("entries must be \(exclusiveMax ? "below" : "at most") \(ConfigValue.formatFloat(max)), got \(ConfigValue.formatFloat(d))")
                }
                return .float(d)
            })
        case .strings:
            guard case .list(let items) = value else { throw fail("must be a list of strings, got \(describe(value))") }
            return .list(try items.map { item in
                switch item {
                case .string: return item
                case .int, .float, .bool: return .string(item.flow)
                default: throw fail("must be a list of strings, got \(describe(item)) in it")
                }
            })
        case .map, .mapList, .required, .checked:
            preconditionFailure("handled by resolve")
        }
    }
}
