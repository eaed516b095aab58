/// The product version, printed by `causal-tune --version` and stored in files we write.
public enum CausalTuneVersion {
    public static let string = "0.1.0"
}
