VERSION = "3.0.0.dev0"
