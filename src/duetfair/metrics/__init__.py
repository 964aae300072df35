"""duetfair.metrics"""
