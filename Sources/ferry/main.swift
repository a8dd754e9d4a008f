import FerryCore
print(Ferry.version)
