import Numerics

/// A named learnable tensor and, when it is trained, its gradient.
///
/// `value` holds the weights in PyTorch layout. `grad` exists only while
/// `requiresGrad` is true, so a frozen backbone carries no gradient memory at all; the
/// layers' full `backward` accumulates into `grad` for the parameters that have one and
/// skips the rest. The optimizer and the checkpoint writer hold `Parameter` references.
public final class Parameter {
    /// The weights (same storage for the parameter's whole life: load into it with
    /// `value.copy(from:)`).
    public let value: Tensor
    /// ∂L/∂value, accumulated by backward passes; `nil` while frozen.
    public private(set) var grad: Tensor?

    public init(_ value: Tensor, requiresGrad: Bool = false) {
        self.value = value
        if requiresGrad { grad = Tensor(zeros: value.shape) }
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(Tensor(zeros: shape), requiresGrad: requiresGrad)
    }

    public var shape: [Int] { value.shape }

    /// Turning this on allocates a zero gradient; turning it off frees it.
    public var requiresGrad: Bool {
        get { grad != nil }
        set {
            if newValue, grad == nil { grad = Tensor(zeros: value.shape) }
            if !newValue { grad = nil }
        }
    }

    /// Sets the gradient (if any) to zero.
    public func zeroGrad() { grad?.zero() }
}

/// A parameter with its hierarchical name (`blocks.3.attn.qkv.weight`).
public struct NamedParameter {
    public let name: String
    public let parameter: Parameter
    public init(name: String, parameter: Parameter) {
        self.name = name
        self.parameter = parameter
    }
}

/// Anything that owns parameters. Names fall out of the structure: a module returns its own
/// parameters as `prefix + localName` and passes `prefix + childName + "."` to its children,
/// so a DINOv2 block asked with prefix `"blocks.3."` yields timm/official checkpoint keys
/// (`blocks.3.norm1.weight`, `blocks.3.attn.qkv.weight`, `blocks.3.mlp.fc1.bias`, …). Callers
/// that want another separator (reference §Files `peft/f_t/weight`) pass their own prefix (`"peft/f_t/"`).
public protocol Module: AnyObject {
    func parameters(prefix: String) -> [NamedParameter]
}

extension Module {
    /// All parameters, named from this module down.
    public var namedParameters: [NamedParameter] { parameters(prefix: "") }

    /// Freezes (no gradient memory, no weight-gradient work) or unfreezes every parameter.
    public func setRequiresGrad(_ flag: Bool) {
        for p in parameters(prefix: "") { p.parameter.requiresGrad = flag }
    }

    /// Zeroes every existing gradient.
    public func zeroGrad() {
        for p in parameters(prefix: "") { p.parameter.zeroGrad() }
    }

    /// The number of scalar parameters.
    public var parameterCount: Int { parameters(prefix: "").reduce(0) { $0 + $1.parameter.value.count } }
}

/// A cache buffer a layer owns, reallocated only when the shape it must hold changes.
public struct CacheBuffer {
    public private(set) var tensor = Tensor.empty

    public init() {}

    /// A tensor of `shape`, reusing the storage when the shape is unchanged.
    public mutating func ensure(_ shape: [Int]) -> Tensor {
        if tensor.shape != shape { tensor = Tensor(zeros: shape) }
        return tensor
    }

    public mutating func release() { tensor = Tensor.empty }

    /// A work buffer of a layer that may borrow from a shared arena: the arena's tensor for
    /// `key` when there is an arena (this buffer then holds nothing), else this buffer.
    mutating func work(_ arena: ScratchArena?, _ key: String, _ shape: [Int]) -> Tensor {
        if let arena { release(); return arena.tensor(key, shape) }
        return ensure(shape)
    }

    /// A cache: in the arena when `inArena` and there is one (this buffer then holds
    /// nothing), else this buffer.
    mutating func cache(_ arena: ScratchArena?, inArena: Bool, _ key: String, _ shape: [Int]) -> Tensor {
        if inArena, let arena { release(); return arena.tensor(key, shape) }
        return ensure(shape)
    }
}

extension Tensor {
    /// One shared zero-element tensor: a placeholder that costs no allocation per call.
    public static let empty = Tensor(zeros: [0])
}

/// Rows of a `[..., C]` tensor read as a matrix.
@inline(__always)
func rowCount(_ t: Tensor, _ cols: Int) -> Int {
    precondition(t.shape.last == cols, "expected last dimension \(cols), got \(t.shape)")
    return t.count / Swift.max(cols, 1)
}
