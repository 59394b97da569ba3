"""VEE rules: one small pure function (or two) per rule family, on numpy arrays.

Arrays are row-aligned; where a rule needs neighbours or group statistics the rows are sorted
by meter-channel group and time (see `smartgrid_assets.vee.arrays`).
"""
