"""infomax.estimators"""
