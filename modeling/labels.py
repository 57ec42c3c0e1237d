"""The two class names, in id order. Every consumer (config, dataset, metrics) reads them here."""

LABEL_NAMES: tuple[str, ...] = ("real", "ai")
ID2LABEL: dict[int, str] = dict(enumerate(LABEL_NAMES))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}
AI_LABEL_ID: int = LABEL2ID["ai"]
