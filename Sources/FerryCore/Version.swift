public enum Ferry { public static let version = "0.1.0" }
