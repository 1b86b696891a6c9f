"""infomax.evaluation"""
