/// The schema as a table: one row per key with its type, default and allowed values —
/// what `causal-tune config --schema` prints and the configuration page of the docs holds
/// (a test keeps the two equal).
public struct ConfigKeyDescription: Equatable, Sendable {
    /// The dotted path; items of a list of mappings are `path[].key`.
    public let path: String
    public let type: String
    /// The default as YAML flow text; `required` when the key has none.
    public let defaultValue: String
    /// The allowed values or range; empty when any value of the type is allowed.
    public let allowed: String

    public init(path: String, type: String, defaultValue: String, allowed: String) {
        self.path = path
        self.type = type
        self.defaultValue = defaultValue
        self.allowed = allowed
    }
}

extension ConfigSchema {
    /// Every key below this schema, in schema order.
    public func keyDescriptions(path: String = "") -> [ConfigKeyDescription] {
        func row(_ type: String, _ allowed: String = "") -> [ConfigKeyDescription] {
            [ConfigKeyDescription(path: path, type: type, defaultValue: defaultValue?.flow ?? "required", allowed: allowed)]
        }
        func join(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        switch self {
        case .map(let fields):
            return fields.flatMap { key, schema in schema.keyDescriptions(path: join(key)) }
        case .checked(let inner, _):
            return inner.keyDescriptions(path: path)
        case .required(let inner):
            return inner.keyDescriptions(path: path).map {
                // The inner schema has no default, which reads as "or null" there; a required key is never null.
                ConfigKeyDescription(path: $0.path, type: $0.type.replacingOccurrences(of: " or null", with: ""),
                                     defaultValue: "required", allowed: $0.allowed)
            }
        case .mapList(let item, _):
            return row("list of mappings") + ConfigSchema.map(item).keyDescriptions(path: path + "[]")
        case .int(_, let min, let max):
            return row("integer", Self.range(min.map(String.init), max.map(String.init), exclusiveMin: false, exclusiveMax: false) ?? "")
        case .float(_, let min, let exclusiveMin, let max, let exclusiveMax):
            return row("number", Self.range(min.map(Self.number), max.map(Self.number),
                                            exclusiveMin: exclusiveMin, exclusiveMax: exclusiveMax) ?? "")
        case .bool:
            return row("bool")
        case .string:
            return row(defaultValue == .null ? "string or null" : "string")
        case .choice(let allowed, _):
            return row("choice", allowed.joined(separator: " \\| "))
        case .ints(_, let min, let max):
            return row("list of integers", Self.range(min.map(String.init), max.map(String.init),
                                                      exclusiveMin: false, exclusiveMax: false).map { "each \($0)" } ?? "")
        case .floats(_, let count, let min, let max, let exclusiveMax):
            let each = Self.range(min.map(Self.number), max.map(Self.number),
                                  exclusiveMin: false, exclusiveMax: exclusiveMax).map { "each \($0)" }
            return row("list of numbers", [count.map { "\($0) entries" }, each].compactMap { $0 }.joined(separator: ", "))
        case .strings:
            return row("list of strings")
        }
    }

    /// A bound as people write it: `10`, `0.5`, `1e-08`.
    static func number(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : ConfigValue.formatFloat(d)
    }

    /// `1 … 64`, `≥ 0`, `(0, 10]`; nil when unbounded.
    static func range(_ min: String?, _ max: String?, exclusiveMin: Bool, exclusiveMax: Bool) -> String? {
        switch (min, max) {
        case (nil, nil): return nil
        case (let lo?, nil): return exclusiveMin ? "> \(lo)" : "≥ \(lo)"
        case (nil, let hi?): return exclusiveMax ? "< \(hi)" : "≤ \(hi)"
        case (let lo?, let hi?):
            if !exclusiveMin && !exclusiveMax { return "\(lo) … \(hi)" }
            return "\(exclusiveMin ? "(" : "[")\(lo), \(hi)\(exclusiveMax ? ")" : "]")"
        }
    }

    /// The keys as a Markdown table.
    public var markdownTable: String {
        var out = "| key | type | default | allowed |\n| --- | --- | --- | --- |\n"
        for key in keyDescriptions() {
            out += "| `\(key.path)` | \(key.type) | `\(key.defaultValue.replacingOccurrences(of: "|", with: "\\|"))` | \(key.allowed) |\n"
        }
        return out
    }
}
