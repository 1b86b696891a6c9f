"""infomax.training"""
