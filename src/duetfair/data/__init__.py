"""duetfair.data"""
