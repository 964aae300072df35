"""duetfair.engine"""
