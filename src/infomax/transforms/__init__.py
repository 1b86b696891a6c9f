"""infomax.transforms"""
