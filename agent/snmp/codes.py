"""RFC 3805 / RFC 2790 enumerations decoded to names (pure tables)."""

from __future__ import annotations

SUPPLY_TYPES = {
    1: "other", 2: "unknown", 3: "toner", 4: "wasteToner", 5: "ink", 6: "inkCartridge",
    7: "inkRibbon", 8: "wasteInk", 9: "opc", 10: "developer", 11: "fuserOil",
    12: "solidWax", 13: "ribbonWax", 14: "wasteWax", 15: "fuser", 16: "coronaWire",
    17: "fuserOilWick", 18: "cleanerUnit", 19: "fuserCleaningPad", 20: "transferUnit",
    21: "tonerCartridge", 22: "fuserOiler", 23: "water", 24: "wasteWater",
    25: "glueWaterAdditive", 26: "wastePaper", 27: "bindingSupply", 28: "bandingSupply",
    29: "stitchingWire", 30: "shrinkWrap", 31: "paperWrap", 32: "staples", 33: "inserts",
    34: "covers", 35: "matteToner", 36: "matteInk",
}

SUPPLY_UNITS = {
    1: "other", 2: "unknown", 3: "tenThousandthsOfInches", 4: "micrometers",
    7: "impressions", 8: "sheets", 11: "hours", 12: "thousandthsOfOunces",
    13: "tenthsOfGrams", 14: "hundrethsOfFluidOunces", 15: "tenthsOfMilliliters",
    16: "feet", 17: "meters", 18: "items", 19: "percent",
}

MARKER_COUNTER_UNITS = {
    3: "tenThousandthsOfInches", 4: "micrometers", 5: "characters", 6: "lines",
    7: "impressions", 8: "sheets", 9: "dotRow", 11: "hours", 16: "feet", 17: "meters",
}

ALERT_SEVERITY = {1: "other", 2: "critical", 3: "warning", 4: "warningBinaryChangeEvent"}

ALERT_TRAINING = {
    1: "other", 2: "unknown", 3: "untrained", 4: "trained", 5: "fieldService",
    6: "management", 7: "noInterventionRequired",
}

ALERT_GROUP = {
    1: "other", 3: "hostResourcesMIBStorageTable", 4: "hostResourcesMIBDeviceTable",
    5: "generalPrinter", 6: "cover", 7: "localization", 8: "input", 9: "output",
    10: "marker", 11: "markerSupplies", 12: "markerColorant", 13: "mediaPath",
    14: "channel", 15: "interpreter", 16: "consoleDisplayBuffer", 17: "consoleLights",
    18: "alert", 30: "finDevice", 31: "finSupply", 32: "finSupplyMediaInput",
    33: "finAttribute",
}

ALERT_CODE = {
    1: "other", 2: "unknown", 3: "coverOpen", 4: "coverClosed", 5: "interlockOpen",
    6: "interlockClosed", 7: "configurationChange", 8: "jam", 9: "subunitMissing",
    10: "subunitLifeAlmostOver", 11: "subunitLifeOver", 12: "subunitAlmostEmpty",
    13: "subunitEmpty", 14: "subunitAlmostFull", 15: "subunitFull", 16: "subunitNearLimit",
    17: "subunitAtLimit", 18: "subunitOpened", 19: "subunitClosed", 20: "subunitTurnedOn",
    21: "subunitTurnedOff", 22: "subunitOffline", 23: "subunitPowerSaver",
    24: "subunitWarmingUp", 25: "subunitAdded", 26: "subunitRemoved",
    27: "subunitResourceAdded", 28: "subunitResourceRemoved",
    29: "subunitRecoverableFailure", 30: "subunitUnrecoverableFailure",
    31: "subunitRecoverableStorageError", 32: "subunitUnrecoverableStorageError",
    33: "subunitMotorFailure", 34: "subunitMemoryExhausted", 35: "subunitUnderTemperature",
    36: "subunitOverTemperature", 37: "subunitTimingFailure", 38: "subunitThermistorFailure",
    501: "doorOpen", 502: "doorClosed", 503: "powerUp", 504: "powerDown",
    505: "printerNMSReset", 506: "printerManualReset", 507: "printerReadyToPrint",
    801: "inputMediaTrayMissing", 802: "inputMediaSizeChange", 803: "inputMediaWeightChange",
    804: "inputMediaTypeChange", 805: "inputMediaColorChange", 806: "inputMediaFormPartsChange",
    807: "inputMediaSupplyLow", 808: "inputMediaSupplyEmpty", 809: "inputManualInputRequest",
    901: "outputMediaTrayMissing", 902: "outputMediaTrayAlmostFull", 903: "outputMediaTrayFull",
    1001: "markerFuserUnderTemperature", 1002: "markerFuserOverTemperature",
    1005: "markerTonerEmpty", 1006: "markerInkEmpty", 1007: "markerPrintRibbonEmpty",
    1008: "markerTonerAlmostEmpty", 1009: "markerInkAlmostEmpty",
    1010: "markerPrintRibbonAlmostEmpty", 1011: "markerWasteTonerReceptacleAlmostFull",
    1012: "markerWasteInkReceptacleAlmostFull", 1013: "markerWasteTonerReceptacleFull",
    1014: "markerWasteInkReceptacleFull", 1015: "markerOpcLifeAlmostOver",
    1016: "markerOpcLifeOver", 1017: "markerDeveloperAlmostEmpty", 1018: "markerDeveloperEmpty",
    1019: "markerTonerCartridgeMissing", 1301: "mediaPathMediaTrayMissing",
    1302: "mediaPathMediaTrayAlmostFull", 1303: "mediaPathMediaTrayFull",
    1304: "mediaPathCannotDuplexMediaSelected", 1501: "interpreterMemoryIncrease",
    1502: "interpreterMemoryDecrease", 1503: "interpreterCartridgeAdded",
    1504: "interpreterCartridgeDeleted", 1505: "interpreterResourceAdded",
    1506: "interpreterResourceDeleted", 1507: "interpreterResourceUnavailable",
    1509: "interpreterComplexPageEncountered", 1801: "alertRemovalOfBinaryChangeEntry",
}

HR_PRINTER_STATUS = {1: "other", 2: "unknown", 3: "idle", 4: "printing", 5: "warmup"}

HR_DEVICE_STATUS = {1: "unknown", 2: "running", 3: "warning", 4: "testing", 5: "down"}

# hrPrinterDetectedErrorState: bit 0 is the most significant bit of the first octet
DETECTED_ERROR_BITS = (
    "lowPaper", "noPaper", "lowToner", "noToner", "doorOpen", "jammed", "offline",
    "serviceRequested", "inputTrayMissing", "outputTrayMissing", "markerSupplyMissing",
    "outputNearFull", "outputFull", "inputTrayEmpty", "overduePreventMaint",
)


def name_of(table: dict[int, str], value: int) -> str:
    return table.get(value, f"code-{value}")


def decode_error_bits(raw: bytes) -> tuple[str, ...]:
    names: list[str] = []
    for bit, name in enumerate(DETECTED_ERROR_BITS):
        byte = bit // 8
        if byte < len(raw) and raw[byte] & (0x80 >> (bit % 8)):
            names.append(name)
    return tuple(names)
