"""infomax.data"""
