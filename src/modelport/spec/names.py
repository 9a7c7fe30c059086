"""The one pattern endpoint names follow (also what traffic policies may point at)."""

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"
