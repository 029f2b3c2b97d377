from django.shortcuts import render


def _label(degrees, positive, negative):
    if degrees == 0:
        return "0°"
    return f"{abs(degrees)}°{positive if degrees > 0 else negative}"


def map_page(request):
    # The map is an equirectangular projection drawn straight into SVG user
    # units (x = longitude, y = -latitude), with a graticule every 30 degrees.
    # The lines at the map's edges get no label.
    meridians = [
        {"x": lon, "label": _label(lon, "E", "W") if abs(lon) < 180 else ""}
        for lon in range(-180, 181, 30)
    ]
    parallels = [
        {"y": -lat, "label": _label(lat, "N", "S") if abs(lat) < 90 else ""}
        for lat in range(-90, 91, 30)
    ]
    return render(
        request, "location/map.html", {"meridians": meridians, "parallels": parallels}
    )
