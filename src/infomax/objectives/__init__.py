"""infomax.objectives"""
